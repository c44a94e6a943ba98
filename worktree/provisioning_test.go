package worktree

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// fifo makes a named pipe.
func fifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// CreateLocking holds the caller's lock while git registers the worktree,
// not while the files are checked out: another git operation that needs
// the lock goes ahead during the checkout. The post-checkout hook runs
// once, with the files there.
func TestCreateLockingReleasesTheLockDuringTheCheckout(t *testing.T) {
	repo := newRepo(t)
	tmp := realDir(t)
	started, gate := fifo(t, filepath.Join(tmp, "started")), fifo(t, filepath.Join(tmp, "gate"))
	hookLog := filepath.Join(tmp, "hook.log")
	// The hook says it started, then blocks until the test lets it go:
	// the checkout cannot end before that.
	write(t, filepath.Join(repo, ".git", "hooks", "post-checkout"), "#!/bin/sh\n"+
		"[ -f f.txt ] && echo files-there >> "+hookLog+"\n"+
		"echo > "+started+"\n"+
		"read x < "+gate+"\n")
	if err := os.Chmod(filepath.Join(repo, ".git", "hooks", "post-checkout"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Whatever happens, nothing stays blocked on the FIFOs.
	t.Cleanup(func() {
		for _, p := range []string{started, gate} {
			if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
	})
	var lock sync.Mutex
	wt := filepath.Join(tmp, "wt")
	done := make(chan error, 1)
	go func() { done <- CreateLocking(ctx, repo, wt, "agent/slow", "HEAD", &lock) }()
	// Reading the FIFO blocks until the hook writes to it.
	hookStarted := make(chan error, 1)
	go func() { _, err := os.ReadFile(started); hookStarted <- err }()
	select {
	case err := <-hookStarted:
		if err != nil {
			t.Fatal(err)
		}
	case err := <-done:
		t.Fatalf("CreateLocking ended before the checkout's hook ran: %v", err)
	}
	// The checkout is under way (the hook runs at its end) and the lock is
	// free: a second worktree is made in the meantime.
	if !lock.TryLock() {
		t.Fatal("the lock is held during the checkout")
	}
	lock.Unlock()
	if err := os.Remove(filepath.Join(repo, ".git", "hooks", "post-checkout")); err != nil {
		t.Fatal(err)
	}
	if err := CreateLocking(ctx, repo, filepath.Join(tmp, "wt2"), "agent/fast", "HEAD", &lock); err != nil {
		t.Fatalf("a second worktree during the first one's checkout: %v", err)
	}
	if err := os.WriteFile(gate, []byte("go\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(wt, "f.txt")); got != "a\nb\nc\n" {
		t.Errorf("f.txt = %q", got)
	}
	if dirty, err := Dirty(ctx, wt); err != nil || dirty {
		t.Errorf("fresh worktree dirty: %v, %v", dirty, err)
	}
	if got := read(t, hookLog); got != "files-there\n" {
		t.Errorf("post-checkout hook log %q; want it run once, after the checkout", got)
	}
}

// A checkout that fails (here: the post-checkout hook) leaves no worktree
// and no branch.
func TestCreateLockingUndoesAFailedCheckout(t *testing.T) {
	repo := newRepo(t)
	hook := filepath.Join(repo, ".git", "hooks", "post-checkout")
	write(t, hook, "#!/bin/sh\nexit 3\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	var lock sync.Mutex
	wt := filepath.Join(realDir(t), "wt")
	if err := CreateLocking(ctx, repo, wt, "agent/fails", "HEAD", &lock); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(wt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("worktree left: %v", err)
	}
	if ok, _ := BranchExists(ctx, repo, "agent/fails"); ok {
		t.Error("branch left")
	}
	if !lock.TryLock() {
		t.Error("lock left held")
	}
}

// A pool worktree is claimed by moving it, renaming its branch and
// bringing it to another commit: untracked and ignored files stay.
func TestMoveRenameResetTo(t *testing.T) {
	repo := newRepo(t)
	old := must(t, repo, "rev-parse", "HEAD")
	write(t, filepath.Join(repo, "f.txt"), "new\n")
	newer := commitAll(t, repo, "newer")
	tmp := realDir(t)
	pool := filepath.Join(tmp, ".pool", "p1")
	if err := Create(ctx, repo, pool, "pool/p1", old); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(pool, "made-by-setup.txt"), "setup\n")
	wt := filepath.Join(tmp, "agent")
	if err := Move(ctx, repo, pool, wt); err != nil {
		t.Fatal(err)
	}
	if err := RenameBranch(ctx, repo, "pool/p1", "agent/one"); err != nil {
		t.Fatal(err)
	}
	if err := ResetTo(ctx, wt, newer); err != nil {
		t.Fatal(err)
	}
	if b, _ := CurrentBranch(ctx, wt); b != "agent/one" {
		t.Errorf("branch %q", b)
	}
	if h, _ := Head(ctx, wt); h != newer {
		t.Errorf("head %s; want %s", h, newer)
	}
	if got := read(t, filepath.Join(wt, "f.txt")); got != "new\n" {
		t.Errorf("f.txt = %q", got)
	}
	if got := read(t, filepath.Join(wt, "made-by-setup.txt")); got != "setup\n" {
		t.Errorf("made-by-setup.txt = %q", got)
	}
	// A local change in the way of the reset: --keep refuses, --hard does it.
	write(t, filepath.Join(wt, "f.txt"), "local\n")
	if err := ResetTo(ctx, wt, old); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(wt, "f.txt")); got != "a\nb\nc\n" {
		t.Errorf("f.txt after the fallback = %q", got)
	}
}

// Files setup commands leave that git does not ignore are not the agent's
// work: commits leave them out, Dirty and DirtyFiles do not count them,
// and Remove without force removes a worktree that has nothing else —
// until someone changes them.
func TestSetupFilesStayOutOfCommits(t *testing.T) {
	repo := newRepo(t)
	wt := filepath.Join(realDir(t), "wt")
	if err := Create(ctx, repo, wt, "agent/one", "HEAD"); err != nil {
		t.Fatal(err)
	}
	base := must(t, wt, "rev-parse", "HEAD")
	// Before setup: nothing. (Something already dirty is not setup's.)
	write(t, filepath.Join(wt, "before.txt"), "the agent's, not setup's\n")
	before, err := UncommittedFiles(ctx, wt)
	if err != nil {
		t.Fatal(err)
	}
	// Setup: a generated file, a rewritten tracked file, a deleted one, a
	// generated directory.
	write(t, filepath.Join(wt, "generated.txt"), "gen\n")
	write(t, filepath.Join(wt, "f.txt"), "rewritten by setup\n")
	if err := os.Remove(filepath.Join(wt, "g.txt")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(wt, "out", "a.js"), "a\n")
	write(t, filepath.Join(wt, "out", "b.js"), "b\n")
	files, err := RecordSetupFiles(ctx, wt, before)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"f.txt", "g.txt", "generated.txt", "out/a.js", "out/b.js"}; !slices.Equal(files, want) {
		t.Fatalf("recorded %q; want %q", files, want)
	}
	if got, err := DirtyFiles(ctx, wt); err != nil || !slices.Equal(got, []string{"before.txt"}) {
		t.Errorf("DirtyFiles = %q, %v; want only before.txt", got, err)
	}

	// The agent's work: a new file, and one of the generated ones changed.
	write(t, filepath.Join(wt, "work.txt"), "work\n")
	write(t, filepath.Join(wt, "out", "b.js"), "b, edited by the agent\n")
	if ok, err := CommitAll(ctx, wt, "agent work"); err != nil || !ok {
		t.Fatalf("CommitAll = %v, %v", ok, err)
	}
	committed := strings.Fields(must(t, wt, "diff", "--name-only", base, "HEAD"))
	if want := []string{"before.txt", "out/b.js", "work.txt"}; !slices.Equal(committed, want) {
		t.Errorf("committed %q; want %q", committed, want)
	}
	if dirty, err := Dirty(ctx, wt); err != nil || dirty {
		t.Errorf("Dirty = %v, %v with only setup's files left", dirty, err)
	}
	if got, err := DirtyFiles(ctx, wt); err != nil || len(got) != 0 {
		t.Errorf("DirtyFiles = %q, %v", got, err)
	}
	// A snapshot of the uncommitted work (what editors show as the
	// running agent's diff) does not hold setup's files either.
	if tree, dirty, err := Snapshot(ctx, wt); err != nil || dirty || tree != must(t, wt, "rev-parse", "HEAD^{tree}") {
		t.Errorf("Snapshot = %s, dirty %v, %v with only setup's files left", tree, dirty, err)
	}
	// Nothing new: nothing to commit.
	if ok, err := CommitAll(ctx, wt, "again"); err != nil || ok {
		t.Errorf("second CommitAll = %v, %v", ok, err)
	}

	// Changed afterwards, a setup file is work like any other.
	write(t, filepath.Join(wt, "generated.txt"), "gen, edited\n")
	if got, err := DirtyFiles(ctx, wt); err != nil || !slices.Equal(got, []string{"generated.txt"}) {
		t.Errorf("DirtyFiles = %q, %v; want generated.txt", got, err)
	}
	if err := Remove(ctx, repo, wt, false); err == nil {
		t.Fatal("Remove without force removed a worktree with a changed file")
	}
	if ok, err := CommitAll(ctx, wt, "edit"); err != nil || !ok {
		t.Fatalf("CommitAll = %v, %v", ok, err)
	}
	if got := must(t, wt, "show", "--name-only", "--format=", "HEAD"); got != "generated.txt" {
		t.Errorf("last commit has %q", got)
	}

	// Only setup's files are left: Remove without force removes it.
	if err := Remove(ctx, repo, wt, false); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(wt); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("worktree still there: %v", err)
	}
}

// The record follows the worktree when it moves (a pool worktree being
// claimed); without a record nothing changes.
func TestSetupFilesFollowAMove(t *testing.T) {
	repo := newRepo(t)
	tmp := realDir(t)
	wt := filepath.Join(tmp, ".pool", "p1")
	if err := Create(ctx, repo, wt, "pool/p1", "HEAD"); err != nil {
		t.Fatal(err)
	}
	if files, err := SetupFiles(wt); err != nil || files != nil {
		t.Fatalf("SetupFiles without a record = %q, %v", files, err)
	}
	write(t, filepath.Join(wt, "generated.txt"), "gen\n")
	if dirty, _ := Dirty(ctx, wt); !dirty {
		t.Fatal("an untracked file without a record is not dirty")
	}
	if _, err := RecordSetupFiles(ctx, wt, nil); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(tmp, "agent")
	if err := Move(ctx, repo, wt, moved); err != nil {
		t.Fatal(err)
	}
	if files, err := SetupFiles(moved); err != nil || !slices.Equal(files, []string{"generated.txt"}) {
		t.Errorf("SetupFiles after the move = %q, %v", files, err)
	}
	if dirty, err := Dirty(ctx, moved); err != nil || dirty {
		t.Errorf("Dirty after the move = %v, %v", dirty, err)
	}
	if ok, err := CommitAll(ctx, moved, "nothing"); err != nil || ok {
		t.Errorf("CommitAll = %v, %v", ok, err)
	}
}
