package worktree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

// runTests isolates git from the developer's configuration and identity.
func runTests(m *testing.M) int {
	home, err := os.MkdirTemp("", "worktree-test-home-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(home)
	global := filepath.Join(home, "gitconfig")
	if err := os.WriteFile(global, nil, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	os.Setenv("HOME", home)
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	os.Setenv("GIT_CONFIG_GLOBAL", global)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	for _, k := range []string{
		"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
		"EMAIL", "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
	} {
		os.Unsetenv(k)
	}
	return m.Run()
}

// --- helpers ---

func must(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := Git(context.Background(), dir, args...)
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return out
}

func realDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newRepo makes a repository on branch main with an identity and one
// commit holding f.txt ("a\nb\nc\n") and g.txt.
func newRepo(t testing.TB) string {
	t.Helper()
	dir := realDir(t)
	must(t, dir, "init", "-q", "-b", "main")
	must(t, dir, "config", "user.name", "Test User")
	must(t, dir, "config", "user.email", "test@example.com")
	write(t, filepath.Join(dir, "f.txt"), "a\nb\nc\n")
	write(t, filepath.Join(dir, "g.txt"), "one\ntwo\nthree\n")
	commitAll(t, dir, "init")
	return dir
}

func commitAll(t testing.TB, dir, msg string) string {
	t.Helper()
	must(t, dir, "add", "-A")
	must(t, dir, "commit", "-q", "-m", msg)
	return must(t, dir, "rev-parse", "HEAD")
}

// branchWith makes branch from start with files written and committed,
// without touching the main checkout (via a temporary worktree).
func branchWith(t testing.TB, repo, branch, start string, files map[string]string) string {
	t.Helper()
	wt := filepath.Join(realDir(t), "wt")
	must(t, repo, "worktree", "add", "-q", "-b", branch, wt, start)
	for name, content := range files {
		p := filepath.Join(wt, name)
		if content == "" {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			continue
		}
		write(t, p, content)
	}
	sha := commitAll(t, wt, "change on "+branch)
	must(t, repo, "worktree", "remove", "--force", wt)
	return sha
}

var ctx = context.Background()

// --- runner ---

func TestVersion(t *testing.T) {
	v, err := Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^\d+\.\d+`).MatchString(v) {
		t.Fatalf("Version = %q", v)
	}
}

func TestGitError(t *testing.T) {
	repo := newRepo(t)
	_, err := Git(ctx, repo, "rev-parse", "--verify", "no-such-ref")
	var ge *GitError
	if !errors.As(err, &ge) {
		t.Fatalf("err = %v (%T), want *GitError", err, err)
	}
	if ge.ExitCode != 128 || ge.Dir != repo || !slices.Equal(ge.Args, []string{"rev-parse", "--verify", "no-such-ref"}) {
		t.Fatalf("GitError = %+v", ge)
	}
	want := "git rev-parse --verify no-such-ref: exit 128: fatal: Needed a single revision"
	if ge.Error() != want {
		t.Fatalf("Error() = %q, want %q", ge.Error(), want)
	}
}

func TestGitNoShellAndPinnedOutput(t *testing.T) {
	repo := newRepo(t)
	if _, err := ResolveCommit(ctx, repo, "$(touch pwned)"); err == nil {
		t.Fatal("resolved a shell expression")
	}
	if _, err := os.Stat(filepath.Join(repo, "pwned")); err == nil {
		t.Fatal("argument went through a shell")
	}
	// Non-ASCII names are not quoted (core.quotepath=off).
	write(t, filepath.Join(repo, "héllo_wörld.txt"), "x\n")
	files, err := DirtyFiles(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(files, []string{"héllo_wörld.txt"}) {
		t.Fatalf("DirtyFiles = %q", files)
	}
	out, err := Git(ctx, repo, "status", "--short")
	if err != nil || out != "?? héllo_wörld.txt" {
		t.Fatalf("status = %q, %v", out, err)
	}
}

// --- names ---

func TestValidateBranchName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"agent/fix-login", true},
		{"feature", true},
		{"a.b", true},
		{"ünïcode", true},
		{"v1.2-x_y", true},
		{"", false},
		{"-x", false},
		{"a..b", false},
		{"a b", false},
		{"x.lock", false},
		{"a/x.lock/b", false},
		{"a/", false},
		{"/a", false},
		{"a//b", false},
		{"a.", false},
		{".a", false},
		{"a/.b", false},
		{"a@{b", false},
		{"@", false},
		{"HEAD", false},
		{"a~b", false},
		{"a^b", false},
		{"a:b", false},
		{"a?b", false},
		{"a*b", false},
		{"a[b", false},
		{`a\b`, false},
		{"a\tb", false},
		{"a\x7fb", false},
	} {
		err := ValidateBranchName(tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateBranchName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// The Go check agrees with git for names git accepts or rejects. ("@" is
// stricter on purpose: git takes it but it reads as HEAD in revisions.)
func TestValidateBranchNameMatchesGit(t *testing.T) {
	for _, name := range []string{"ok/name", "a..b", "x.lock", "a b", "a/", "a@{1}", "HEAD", "a.", ".a", "a//b", "é", "a/b.c", "a\\b", "a?", "-x"} {
		_, err := Git(ctx, "", "check-ref-format", "--branch", name)
		if got := ValidateBranchName(name); (got == nil) != (err == nil) {
			t.Errorf("%q: ValidateBranchName=%v, git check-ref-format=%v", name, got, err)
		}
	}
}

func TestSlugify(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"Fix the login bug", 40, "fix-the-login-bug"},
		{"  --Hello,   World!!  ", 40, "hello-world"},
		{"Don't panic", 40, "dont-panic"},
		{"Crème brûlée recipe", 40, "creme-brulee-recipe"},
		{"add OAuth2 support to API", 14, "add-oauth2"},
		{"add OAuth2 support to API", 0, "add-oauth2-support-to-api"},
		{"supercalifragilisticexpialidocious", 10, "supercalif"},
		{"a supercalifragilisticexpialidocious", 10, "a-supercal"},
		{"", 20, "agent"},
		{"!!! ??? 日本語", 20, "agent"},
		{"", 3, "age"},
		{"ab-cd", 3, "ab"},
	} {
		got := Slugify(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("Slugify(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
		if !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`).MatchString(got) {
			t.Errorf("Slugify(%q, %d) = %q: not a clean slug", tc.in, tc.max, got)
		}
		if tc.max > 0 && len(got) > tc.max {
			t.Errorf("Slugify(%q, %d) = %q: longer than max", tc.in, tc.max, got)
		}
	}
}

// --- worktrees and branches ---

func TestCreateRemoveDeleteBranch(t *testing.T) {
	repo := newRepo(t)
	base := must(t, repo, "rev-parse", "HEAD")
	wt := filepath.Join(realDir(t), "agents", "one")

	if err := Create(ctx, repo, wt, "agent/one", base); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(wt, "f.txt")); got != "a\nb\nc\n" {
		t.Fatalf("f.txt in worktree = %q", got)
	}
	if b, err := CurrentBranch(ctx, wt); err != nil || b != "agent/one" {
		t.Fatalf("CurrentBranch = %q, %v", b, err)
	}
	if h, err := Head(ctx, wt); err != nil || h != base {
		t.Fatalf("Head = %q, %v; want %s", h, err, base)
	}
	if ok, err := BranchExists(ctx, repo, "agent/one"); err != nil || !ok {
		t.Fatalf("BranchExists = %v, %v", ok, err)
	}
	wts, err := ListWorktrees(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(wts) != 2 || wts[0].Path != repo || wts[0].Branch != "main" ||
		wts[1].Path != wt || wts[1].Branch != "agent/one" || wts[1].Head != base || wts[1].Detached {
		t.Fatalf("ListWorktrees = %+v", wts)
	}

	// A dirty worktree needs force.
	write(t, filepath.Join(wt, "scratch.txt"), "x")
	if err := Remove(ctx, repo, wt, false); err == nil {
		t.Fatal("Remove without force removed a dirty worktree")
	}
	if err := Remove(ctx, repo, wt, true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(wt); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("worktree dir still there: %v", err)
	}
	if err := Remove(ctx, repo, wt, false); err != nil {
		t.Fatalf("second Remove: %v", err)
	}
	if err := DeleteBranch(ctx, repo, "agent/one", false); err != nil {
		t.Fatal(err)
	}
	if ok, err := BranchExists(ctx, repo, "agent/one"); err != nil || ok {
		t.Fatalf("BranchExists after delete = %v, %v", ok, err)
	}
	if err := DeleteBranch(ctx, repo, "agent/one", false); err != nil {
		t.Fatalf("second DeleteBranch: %v", err)
	}
}

func TestDeleteBranchUnmergedNeedsForce(t *testing.T) {
	repo := newRepo(t)
	branchWith(t, repo, "feat", "main", map[string]string{"n.txt": "n\n"})
	if err := DeleteBranch(ctx, repo, "feat", false); err == nil {
		t.Fatal("deleted an unmerged branch without force")
	}
	if err := DeleteBranch(ctx, repo, "feat", true); err != nil {
		t.Fatal(err)
	}
	if ok, _ := BranchExists(ctx, repo, "feat"); ok {
		t.Fatal("branch still exists")
	}
}

func TestRemoveAfterDirDeleted(t *testing.T) {
	repo := newRepo(t)
	wt := filepath.Join(realDir(t), "gone")
	if err := Create(ctx, repo, wt, "gone", "HEAD"); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(wt); err != nil {
		t.Fatal(err)
	}
	if err := Remove(ctx, repo, wt, false); err != nil {
		t.Fatal(err)
	}
	wts, err := ListWorktrees(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(wts) != 1 {
		t.Fatalf("stale worktree not pruned: %+v", wts)
	}
	// The branch is no longer checked out anywhere: it can be deleted.
	if err := DeleteBranch(ctx, repo, "gone", true); err != nil {
		t.Fatal(err)
	}
}

func TestCreateFailureLeavesNothing(t *testing.T) {
	repo := newRepo(t)
	parent := realDir(t)
	state := func() string {
		return must(t, repo, "worktree", "list", "--porcelain") + "\n" +
			must(t, repo, "for-each-ref", "--format=%(refname)", "refs/heads")
	}
	before := state()

	t.Run("branch exists", func(t *testing.T) {
		must(t, repo, "branch", "taken")
		defer must(t, repo, "branch", "-D", "taken")
		before := state()
		wt := filepath.Join(parent, "taken")
		if err := Create(ctx, repo, wt, "taken", "HEAD"); err == nil {
			t.Fatal("Create succeeded with an existing branch")
		}
		if _, err := os.Stat(wt); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("worktree dir left behind: %v", err)
		}
		if after := state(); after != before {
			t.Fatalf("state changed:\n%s\nvs\n%s", before, after)
		}
	})

	t.Run("git fails after creating", func(t *testing.T) {
		// A failing post-checkout hook makes `git worktree add` exit 1
		// after it created the branch and the checkout.
		hook := filepath.Join(repo, ".git", "hooks", "post-checkout")
		write(t, hook, "#!/bin/sh\nexit 1\n")
		if err := os.Chmod(hook, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(hook)
		wt := filepath.Join(parent, "hooked")
		err := Create(ctx, repo, wt, "hooked", "HEAD")
		var ge *GitError
		if !errors.As(err, &ge) {
			t.Fatalf("Create = %v, want a *GitError", err)
		}
		if !strings.HasPrefix(err.Error(), "create worktree "+wt+": git ") {
			t.Fatalf("error lacks context: %v", err)
		}
		if _, err := os.Stat(wt); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("worktree dir left behind: %v", err)
		}
		if after := state(); after != before {
			t.Fatalf("state changed:\n%s\nvs\n%s", before, after)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		full := filepath.Join(parent, "full")
		write(t, filepath.Join(full, "keep.txt"), "keep")
		for _, tc := range []struct{ path, branch, base string }{
			{"relative/path", "ok1", "HEAD"},
			{filepath.Join(parent, "x1"), "-x", "HEAD"},
			{filepath.Join(parent, "x2"), "ok2", "no-such-commit"},
			{filepath.Join(parent, "x3"), "ok3", "--orphan"},
			{full, "ok4", "HEAD"},
		} {
			if err := Create(ctx, repo, tc.path, tc.branch, tc.base); err == nil {
				t.Errorf("Create(%q, %q, %q) succeeded", tc.path, tc.branch, tc.base)
			}
		}
		if read(t, filepath.Join(full, "keep.txt")) != "keep" {
			t.Fatal("existing directory was touched")
		}
		if after := state(); after != before {
			t.Fatalf("state changed:\n%s\nvs\n%s", before, after)
		}
	})
}

func TestCreateIntoEmptyDir(t *testing.T) {
	repo := newRepo(t)
	wt := realDir(t) // exists, empty
	if err := Create(ctx, repo, wt, "into-empty", "main"); err != nil {
		t.Fatal(err)
	}
	if read(t, filepath.Join(wt, "g.txt")) != "one\ntwo\nthree\n" {
		t.Fatal("checkout missing")
	}
}

func TestRepoRoot(t *testing.T) {
	repo := newRepo(t)
	sub := filepath.Join(repo, "a", "b")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	wt := filepath.Join(realDir(t), "linked")
	if err := Create(ctx, repo, wt, "linked", "HEAD"); err != nil {
		t.Fatal(err)
	}
	wtSub := filepath.Join(wt, "deep")
	if err := os.MkdirAll(wtSub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{repo, sub, wt, wtSub, filepath.Join(repo, ".git")} {
		got, err := RepoRoot(ctx, dir)
		if err != nil || got != repo {
			t.Errorf("RepoRoot(%s) = %q, %v; want %s", dir, got, err, repo)
		}
	}

	// A git dir outside the checkout (--separate-git-dir).
	sep, gitDir := realDir(t), filepath.Join(realDir(t), "store.git")
	must(t, sep, "init", "-q", "--separate-git-dir", gitDir)
	if err := os.Mkdir(filepath.Join(sep, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if got, err := RepoRoot(ctx, filepath.Join(sep, "sub")); err != nil || got != sep {
		t.Errorf("RepoRoot(separate git dir) = %q, %v; want %s", got, err, sep)
	}
	sepWt := filepath.Join(realDir(t), "sep-wt")
	write(t, filepath.Join(sep, "x.txt"), "x")
	if ok, err := CommitAll(ctx, sep, "x"); err != nil || !ok {
		t.Fatalf("CommitAll = %v, %v", ok, err)
	}
	must(t, sep, "worktree", "add", "-q", "-b", "sep", sepWt)
	if got, err := RepoRoot(ctx, sepWt); err == nil {
		t.Errorf("RepoRoot(linked worktree of separate git dir) = %q, want an error", got)
	}

	plain := realDir(t)
	_, err := RepoRoot(ctx, plain)
	if !errors.Is(err, ErrNotRepository) || err.Error() != "not a git repository: "+plain {
		t.Errorf("RepoRoot(non-repo) = %v", err)
	}
	if _, err := RepoRoot(ctx, filepath.Join(plain, "missing")); !errors.Is(err, ErrNotRepository) {
		t.Errorf("RepoRoot(missing dir) = %v", err)
	}

	bare := realDir(t)
	must(t, bare, "init", "-q", "--bare")
	if _, err := RepoRoot(ctx, bare); err == nil || !strings.Contains(err.Error(), "bare") {
		t.Errorf("RepoRoot(bare) = %v", err)
	}
}

func TestCurrentBranch(t *testing.T) {
	repo := newRepo(t)
	if b, err := CurrentBranch(ctx, repo); err != nil || b != "main" {
		t.Fatalf("CurrentBranch = %q, %v", b, err)
	}
	must(t, repo, "checkout", "-q", "--detach")
	_, err := CurrentBranch(ctx, repo)
	if err == nil || err.Error() != "HEAD is detached in "+repo+"; pass --base" {
		t.Fatalf("CurrentBranch(detached) = %v", err)
	}
}

func TestResolveCommit(t *testing.T) {
	repo := newRepo(t)
	head := must(t, repo, "rev-parse", "HEAD")
	must(t, repo, "tag", "-a", "-m", "annotated", "v1")
	for _, ref := range []string{"HEAD", "main", "v1", head[:10], "refs/heads/main"} {
		if got, err := ResolveCommit(ctx, repo, ref); err != nil || got != head {
			t.Errorf("ResolveCommit(%q) = %q, %v; want %s", ref, got, err, head)
		}
	}
	tree := must(t, repo, "rev-parse", "HEAD^{tree}")
	for _, ref := range []string{"nope", "HEAD~5", tree, "", "-h", "--all"} {
		_, err := ResolveCommit(ctx, repo, ref)
		if err == nil {
			t.Errorf("ResolveCommit(%q) succeeded", ref)
		}
	}
	if _, err := ResolveCommit(ctx, repo, "nope"); !errors.Is(err, ErrUnknownRevision) {
		t.Errorf("ResolveCommit(nope) = %v, want ErrUnknownRevision", err)
	}

	// The go-git fast path answers exactly the simple forms, like the CLI.
	wt := filepath.Join(realDir(t), "wt")
	if err := Create(ctx, repo, wt, "side", "HEAD"); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(wt, "side.txt"), "s\n")
	side := commitAll(t, wt, "side")
	for _, tc := range []struct {
		dir, ref, want string
		fast           bool
	}{
		{repo, "HEAD", head, true},
		{wt, "HEAD", side, true},
		{wt, "refs/heads/main", head, true},
		{repo, "refs/tags/v1", head, true},
		{repo, side, side, true},
		{repo, "main", head, false},
		{repo, "side~1", head, false},
		{repo, tree, "", false},
		{repo, "refs/heads/nope", "", false},
	} {
		sha, ok := resolveFast(tc.dir, tc.ref)
		if ok != tc.fast || (ok && sha != tc.want) {
			t.Errorf("resolveFast(%s, %q) = %q, %v; want %q, %v", tc.dir, tc.ref, sha, ok, tc.want, tc.fast)
		}
		cli, _ := Git(ctx, tc.dir, "rev-parse", "--verify", "--quiet", tc.ref+"^{commit}")
		if cli != tc.want {
			t.Errorf("git rev-parse %q = %q, want %q", tc.ref, cli, tc.want)
		}
	}
}

func TestBranchExistsMatchesCLI(t *testing.T) {
	repo := newRepo(t)
	must(t, repo, "branch", "loose")
	must(t, repo, "branch", "packed/one")
	must(t, repo, "pack-refs", "--all")
	must(t, repo, "tag", "tagonly")
	wt := filepath.Join(realDir(t), "wt")
	if err := Create(ctx, repo, wt, "from-wt", "HEAD"); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{repo, wt, filepath.Join(repo, ".git")} {
		for _, b := range []string{"main", "loose", "packed/one", "from-wt", "missing", "tagonly", "packed"} {
			got, err := BranchExists(ctx, dir, b)
			if err != nil {
				t.Fatal(err)
			}
			want, err := branchExistsCLI(ctx, dir, b)
			if err != nil {
				t.Fatal(err)
			}
			wantNamed := b == "main" || b == "loose" || b == "packed/one" || b == "from-wt"
			if got != want || got != wantNamed {
				t.Errorf("BranchExists(%s, %q) = %v, CLI %v, want %v", dir, b, got, want, wantNamed)
			}
		}
	}
	if _, err := BranchExists(ctx, repo, "a..b"); err == nil {
		t.Error("BranchExists accepted an invalid name")
	}
}

func TestCheckedOutIn(t *testing.T) {
	repo := newRepo(t)
	wt := filepath.Join(realDir(t), "wt")
	if err := Create(ctx, repo, wt, "feat", "HEAD"); err != nil {
		t.Fatal(err)
	}
	must(t, repo, "branch", "idle")
	for branch, want := range map[string]string{"main": repo, "feat": wt, "idle": "", "missing": ""} {
		got, err := CheckedOutIn(ctx, repo, branch)
		if err != nil || got != want {
			t.Errorf("CheckedOutIn(%q) = %q, %v; want %q", branch, got, err, want)
		}
	}
	// Same answers from inside the linked worktree.
	if got, err := CheckedOutIn(ctx, wt, "main"); err != nil || got != repo {
		t.Errorf("CheckedOutIn from worktree = %q, %v", got, err)
	}
}

// --- status and commits ---

func TestDirtyFiles(t *testing.T) {
	repo := newRepo(t)
	if dirty, err := Dirty(ctx, repo); err != nil || dirty {
		t.Fatalf("Dirty(clean) = %v, %v", dirty, err)
	}
	write(t, filepath.Join(repo, ".gitignore"), "*.log\n")
	commitAll(t, repo, "ignore logs")
	write(t, filepath.Join(repo, "debug.log"), "ignored")
	if dirty, err := Dirty(ctx, repo); err != nil || dirty {
		t.Fatalf("Dirty(only ignored) = %v, %v", dirty, err)
	}
	write(t, filepath.Join(repo, "new file.txt"), "n")
	write(t, filepath.Join(repo, "f.txt"), "changed\n")
	write(t, filepath.Join(repo, "dir", "x.txt"), "x")
	must(t, repo, "mv", "g.txt", "renamed g.txt")
	files, err := DirtyFiles(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(files)
	want := []string{"dir/", "f.txt", "new file.txt", "renamed g.txt"}
	if !slices.Equal(files, want) {
		t.Fatalf("DirtyFiles = %q, want %q", files, want)
	}
	if dirty, err := Dirty(ctx, repo); err != nil || !dirty {
		t.Fatalf("Dirty = %v, %v", dirty, err)
	}
}

func TestCommitAll(t *testing.T) {
	repo := newRepo(t)
	if ok, err := CommitAll(ctx, repo, "nothing"); err != nil || ok {
		t.Fatalf("CommitAll(clean) = %v, %v", ok, err)
	}
	before := must(t, repo, "rev-parse", "HEAD")
	// A pre-commit hook that fails must be skipped (--no-verify).
	hook := filepath.Join(repo, ".git", "hooks", "pre-commit")
	write(t, hook, "#!/bin/sh\nexit 1\n")
	if err := os.Chmod(hook, 0o755); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(repo, "f.txt"), "changed\n")
	write(t, filepath.Join(repo, "sub", "new.txt"), "new\n")
	if err := os.Remove(filepath.Join(repo, "g.txt")); err != nil {
		t.Fatal(err)
	}
	msg := "fix: $(touch pwned) `id` \"quoted\" 'single'\n\n# not a comment\nbody line"
	if ok, err := CommitAll(ctx, filepath.Join(repo, "sub"), msg); err != nil || !ok {
		t.Fatalf("CommitAll = %v, %v", ok, err)
	}
	if got := must(t, repo, "log", "-1", "--format=%B"); got != msg {
		t.Fatalf("message = %q, want %q", got, msg)
	}
	if got := must(t, repo, "log", "-1", "--format=%an <%ae>"); got != "Test User <test@example.com>" {
		t.Fatalf("author = %q", got)
	}
	if got := must(t, repo, "rev-parse", "HEAD~1"); got != before {
		t.Fatal("not committed on top of HEAD")
	}
	if dirty, _ := Dirty(ctx, repo); dirty {
		t.Fatal("still dirty after CommitAll")
	}
	if got := must(t, repo, "show", "--name-status", "--format=", "HEAD"); got != "M\tf.txt\nD\tg.txt\nA\tsub/new.txt" {
		t.Fatalf("committed changes = %q", got)
	}
	if _, err := os.Stat(filepath.Join(repo, "pwned")); err == nil {
		t.Fatal("message went through a shell")
	}
	if _, err := CommitAll(ctx, repo, "  \n"); err == nil {
		t.Fatal("empty message accepted")
	}
}

func TestCommitAllIdentityFallback(t *testing.T) {
	dir := realDir(t)
	must(t, dir, "init", "-q", "-b", "main")
	// Without user.name/email, useConfigOnly makes git refuse to guess.
	must(t, dir, "config", "user.useConfigOnly", "true")
	if _, err := Git(ctx, dir, "var", "GIT_AUTHOR_IDENT"); err == nil {
		t.Fatal("precondition: git found an identity")
	}
	write(t, filepath.Join(dir, "a.txt"), "a\n")
	if ok, err := CommitAll(ctx, dir, "first"); err != nil || !ok {
		t.Fatalf("CommitAll = %v, %v", ok, err)
	}
	got := must(t, dir, "log", "-1", "--format=%an <%ae>|%cn <%ce>")
	if want := "bgagents <bgagents@localhost>|bgagents <bgagents@localhost>"; got != want {
		t.Fatalf("identity = %q, want %q", got, want)
	}
	// For that commit only: nothing was written to the config.
	if _, err := Git(ctx, dir, "config", "user.name"); err == nil {
		t.Fatal("user.name was configured")
	}
}

// --- diffs ---

// featureBranch makes branch "feat" two commits ahead of main: f.txt line
// edited, new.txt added, g.txt renamed, bin added, gone.txt deleted.
func featureBranch(t testing.TB) (repo, base, tip string) {
	t.Helper()
	repo = newRepo(t)
	write(t, filepath.Join(repo, "gone.txt"), "1\n2\n3\n")
	base = commitAll(t, repo, "add gone.txt")
	wt := filepath.Join(realDir(t), "feat")
	must(t, repo, "worktree", "add", "-q", "-b", "feat", wt, base)
	write(t, filepath.Join(wt, "f.txt"), "A\nb\nc\n")
	write(t, filepath.Join(wt, "new.txt"), "x\ny\n")
	commitAll(t, wt, "first")
	must(t, wt, "mv", "g.txt", "h.txt")
	write(t, filepath.Join(wt, "bin"), "\x00\x01\x02")
	if err := os.Remove(filepath.Join(wt, "gone.txt")); err != nil {
		t.Fatal(err)
	}
	tip = commitAll(t, wt, "second")
	return repo, base, tip
}

func TestStatDiffChangedFiles(t *testing.T) {
	repo, base, _ := featureBranch(t)
	// Colour and external diff drivers from config must not leak in.
	must(t, repo, "config", "color.diff", "always")
	must(t, repo, "config", "diff.external", "/bin/false")

	st, err := Stat(ctx, repo, base, "feat")
	if err != nil {
		t.Fatal(err)
	}
	want := DiffStat{Commits: 2, Files: 5, Additions: 1 + 2, Deletions: 1 + 3}
	if st != want {
		t.Fatalf("Stat = %+v, want %+v", st, want)
	}

	changes, err := ChangedFiles(ctx, repo, base, "feat")
	if err != nil {
		t.Fatal(err)
	}
	wantChanges := []FileChange{
		{Path: "bin", Status: "A"},
		{Path: "f.txt", Status: "M", Additions: 1, Deletions: 1},
		{Path: "gone.txt", Status: "D", Deletions: 3},
		{Path: "h.txt", OldPath: "g.txt", Status: "R"},
		{Path: "new.txt", Status: "A", Additions: 2},
	}
	slices.SortFunc(changes, func(a, b FileChange) int { return strings.Compare(a.Path, b.Path) })
	if !slices.Equal(changes, wantChanges) {
		t.Fatalf("ChangedFiles =\n%+v\nwant\n%+v", changes, wantChanges)
	}

	patch, err := Diff(ctx, repo, base, "feat", false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"diff --git a/f.txt b/f.txt", "\n-a\n+A\n", "rename from g.txt", "Binary files"} {
		if !strings.Contains(patch, s) {
			t.Errorf("Diff lacks %q:\n%s", s, patch)
		}
	}
	if strings.Contains(patch, "\x1b[") {
		t.Error("Diff is coloured")
	}
	stat, err := Diff(ctx, repo, base, "feat", true)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stat, "f.txt") || !strings.Contains(stat, "5 files changed") || strings.Contains(stat, "diff --git") {
		t.Errorf("Diff --stat = %q", stat)
	}

	if n, err := Ahead(ctx, repo, base, "feat"); err != nil || n != 2 {
		t.Errorf("Ahead = %d, %v", n, err)
	}
	if n, err := Ahead(ctx, repo, "feat", base); err != nil || n != 0 {
		t.Errorf("Ahead reversed = %d, %v", n, err)
	}
	if ok, err := IsAncestor(ctx, repo, base, "feat"); err != nil || !ok {
		t.Errorf("IsAncestor(base, feat) = %v, %v", ok, err)
	}
	if ok, err := IsAncestor(ctx, repo, "feat", base); err != nil || ok {
		t.Errorf("IsAncestor(feat, base) = %v, %v", ok, err)
	}
	if _, err := IsAncestor(ctx, repo, "nope", base); err == nil {
		t.Error("IsAncestor(nope) succeeded")
	}
	if _, err := Stat(ctx, repo, "--output=/tmp/x", "feat"); err == nil {
		t.Error("Stat accepted an option as a revision")
	}
}

func TestStatEmpty(t *testing.T) {
	repo := newRepo(t)
	st, err := Stat(ctx, repo, "HEAD", "HEAD")
	if err != nil || st != (DiffStat{}) {
		t.Fatalf("Stat(HEAD, HEAD) = %+v, %v", st, err)
	}
	if cs, err := ChangedFiles(ctx, repo, "HEAD", "HEAD"); err != nil || len(cs) != 0 {
		t.Fatalf("ChangedFiles(HEAD, HEAD) = %+v, %v", cs, err)
	}
}

func TestConflicts(t *testing.T) {
	repo := newRepo(t)
	branchWith(t, repo, "left", "main", map[string]string{"f.txt": "LEFT\nb\nc\n", "my file.txt": "l\n"})
	branchWith(t, repo, "right", "main", map[string]string{"f.txt": "RIGHT\nb\nc\n", "my file.txt": "r\n"})
	branchWith(t, repo, "other", "main", map[string]string{"f.txt": "a\nb\nOTHER\n", "g.txt": ""})

	files, err := Conflicts(ctx, repo, "left", "right")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"f.txt", "my file.txt"}; !slices.Equal(files, want) {
		t.Fatalf("Conflicts = %q, want %q", files, want)
	}
	files, err = Conflicts(ctx, repo, "left", "other")
	if err != nil || files != nil {
		t.Fatalf("Conflicts(disjoint) = %q, %v", files, err)
	}
	if _, err := Conflicts(ctx, repo, "left", "nope"); err == nil {
		t.Fatal("Conflicts with unknown ref succeeded")
	}
	if dirty, _ := Dirty(ctx, repo); dirty {
		t.Fatal("Conflicts touched the checkout")
	}
}

// --- merge ---

func TestMerge(t *testing.T) {
	t.Run("merge commit, base not checked out", func(t *testing.T) {
		repo := newRepo(t)
		must(t, repo, "branch", "release")
		must(t, repo, "checkout", "-q", "--detach")
		tip := branchWith(t, repo, "feat", "main", map[string]string{"new.txt": "new\n"})
		old := must(t, repo, "rev-parse", "release")
		if w, _ := CheckedOutIn(ctx, repo, "release"); w != "" {
			t.Fatalf("release is checked out at %s", w)
		}
		sha, err := Merge(ctx, repo, "release", "feat", MergeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := must(t, repo, "rev-parse", "release"); got != sha {
			t.Fatalf("release = %s, want %s", got, sha)
		}
		if got := must(t, repo, "log", "-1", "--format=%P", sha); got != old+" "+tip {
			t.Fatalf("parents = %q, want %s %s", got, old, tip)
		}
		if got := must(t, repo, "show", "release:new.txt"); got != "new" {
			t.Fatalf("new.txt = %q", got)
		}
		if got := must(t, repo, "log", "-1", "--format=%s", sha); got != "Merge branch 'feat' into release" {
			t.Fatalf("subject = %q", got)
		}
		if got := must(t, repo, "reflog", "-1", "--format=%gs", "release"); got != "bgagents: merge feat" {
			t.Fatalf("reflog = %q", got)
		}
	})

	t.Run("squash into checked-out clean base updates files", func(t *testing.T) {
		repo := newRepo(t)
		old := must(t, repo, "rev-parse", "main")
		branchWith(t, repo, "feat", "main", map[string]string{"f.txt": "A\nb\nc\n", "new.txt": "new\n"})
		write(t, filepath.Join(repo, "untracked-elsewhere.txt"), "keep me")
		sha, err := Merge(ctx, repo, "main", "feat", MergeOptions{Squash: true, Message: "land feat"})
		if err != nil {
			t.Fatal(err)
		}
		if got := must(t, repo, "rev-parse", "HEAD"); got != sha {
			t.Fatalf("HEAD = %s, want %s", got, sha)
		}
		if got := must(t, repo, "log", "-1", "--format=%P|%B", sha); got != old+"|land feat" {
			t.Fatalf("parents|message = %q", got)
		}
		if read(t, filepath.Join(repo, "f.txt")) != "A\nb\nc\n" || read(t, filepath.Join(repo, "new.txt")) != "new\n" {
			t.Fatal("working tree not updated")
		}
		if read(t, filepath.Join(repo, "untracked-elsewhere.txt")) != "keep me" {
			t.Fatal("unrelated untracked file touched")
		}
		files, _ := DirtyFiles(ctx, repo)
		if !slices.Equal(files, []string{"untracked-elsewhere.txt"}) {
			t.Fatalf("DirtyFiles after merge = %q", files)
		}
		// Squash-merging the same branch again adds nothing.
		again, err := Merge(ctx, repo, "main", "feat", MergeOptions{Squash: true})
		if err != nil || again != sha {
			t.Fatalf("second squash = %s, %v; want %s", again, err, sha)
		}
	})

	t.Run("default squash message lists commits", func(t *testing.T) {
		repo := newRepo(t)
		must(t, repo, "checkout", "-q", "--detach")
		branchWith(t, repo, "feat", "main", map[string]string{"new.txt": "new\n"})
		sha, err := Merge(ctx, repo, "main", "feat", MergeOptions{Squash: true})
		if err != nil {
			t.Fatal(err)
		}
		if got := must(t, repo, "log", "-1", "--format=%B", sha); got != "Squash branch 'feat' into main\n\n* change on feat" {
			t.Fatalf("message = %q", got)
		}
	})

	t.Run("base checked out in a linked worktree", func(t *testing.T) {
		repo := newRepo(t)
		must(t, repo, "checkout", "-q", "--detach")
		wt := filepath.Join(realDir(t), "main-wt")
		must(t, repo, "worktree", "add", "-q", wt, "main")
		branchWith(t, repo, "feat", "main", map[string]string{"g.txt": "changed\n"})
		sha, err := Merge(ctx, repo, "main", "feat", MergeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if h := must(t, wt, "rev-parse", "HEAD"); h != sha {
			t.Fatalf("worktree HEAD = %s, want %s", h, sha)
		}
		if read(t, filepath.Join(wt, "g.txt")) != "changed\n" {
			t.Fatal("linked worktree files not updated")
		}
	})

	t.Run("dirty base checkout refuses", func(t *testing.T) {
		repo := newRepo(t)
		old := must(t, repo, "rev-parse", "main")
		branchWith(t, repo, "feat", "main", map[string]string{"new.txt": "new\n"})
		write(t, filepath.Join(repo, "g.txt"), "my local edit\n")
		_, err := Merge(ctx, repo, "main", "feat", MergeOptions{})
		var de *DirtyError
		if !errors.As(err, &de) {
			t.Fatalf("Merge = %v, want *DirtyError", err)
		}
		if de.Path != repo || !slices.Equal(de.Files, []string{"g.txt"}) {
			t.Fatalf("DirtyError = %+v", de)
		}
		want := "the checkout at " + repo + " has uncommitted changes (g.txt); commit or stash them, then merge again"
		if de.Error() != want {
			t.Fatalf("Error() = %q", de.Error())
		}
		if read(t, filepath.Join(repo, "g.txt")) != "my local edit\n" {
			t.Fatal("dirty file changed")
		}
		if got := must(t, repo, "rev-parse", "main"); got != old {
			t.Fatal("base moved")
		}
		if _, err := os.Stat(filepath.Join(repo, "new.txt")); err == nil {
			t.Fatal("merge result checked out")
		}
	})

	t.Run("untracked file in the way refuses", func(t *testing.T) {
		repo := newRepo(t)
		old := must(t, repo, "rev-parse", "main")
		branchWith(t, repo, "feat", "main", map[string]string{"new.txt": "theirs\n", "d/e.txt": "e\n"})
		write(t, filepath.Join(repo, "new.txt"), "mine\n")
		write(t, filepath.Join(repo, "d"), "a file where a dir goes\n")
		_, err := Merge(ctx, repo, "main", "feat", MergeOptions{})
		var de *DirtyError
		if !errors.As(err, &de) || !slices.Equal(de.Files, []string{"d", "new.txt"}) {
			t.Fatalf("Merge = %v, want *DirtyError on d, new.txt", err)
		}
		if read(t, filepath.Join(repo, "new.txt")) != "mine\n" {
			t.Fatal("untracked file overwritten")
		}
		if got := must(t, repo, "rev-parse", "main"); got != old {
			t.Fatal("base moved")
		}
	})

	t.Run("conflict refuses", func(t *testing.T) {
		repo := newRepo(t)
		must(t, repo, "checkout", "-q", "--detach")
		branchWith(t, repo, "feat", "main", map[string]string{"f.txt": "FEAT\nb\nc\n"})
		must(t, repo, "checkout", "-q", "main")
		write(t, filepath.Join(repo, "f.txt"), "MAIN\nb\nc\n")
		old := commitAll(t, repo, "main edit")
		_, err := Merge(ctx, repo, "main", "feat", MergeOptions{})
		var ce *ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("Merge = %v, want *ConflictError", err)
		}
		if ce.Base != "main" || ce.Branch != "feat" || !slices.Equal(ce.Files, []string{"f.txt"}) {
			t.Fatalf("ConflictError = %+v", ce)
		}
		if ce.Error() != "merging feat into main would conflict in: f.txt" {
			t.Fatalf("Error() = %q", ce.Error())
		}
		if got := must(t, repo, "rev-parse", "main"); got != old {
			t.Fatal("base moved")
		}
		if read(t, filepath.Join(repo, "f.txt")) != "MAIN\nb\nc\n" {
			t.Fatal("working tree touched")
		}
		if dirty, _ := Dirty(ctx, repo); dirty {
			t.Fatal("checkout left dirty")
		}
	})

	t.Run("already merged", func(t *testing.T) {
		repo := newRepo(t)
		must(t, repo, "branch", "old")
		write(t, filepath.Join(repo, "f.txt"), "later\n")
		head := commitAll(t, repo, "later")
		sha, err := Merge(ctx, repo, "main", "old", MergeOptions{})
		if err != nil || sha != head {
			t.Fatalf("Merge = %s, %v; want %s", sha, err, head)
		}
		if got := must(t, repo, "rev-list", "--count", "HEAD"); got != "2" {
			t.Fatalf("commit count = %s", got)
		}
	})

	t.Run("identity fallback", func(t *testing.T) {
		repo := newRepo(t)
		must(t, repo, "config", "--unset", "user.name")
		must(t, repo, "config", "--unset", "user.email")
		must(t, repo, "config", "user.useConfigOnly", "true")
		must(t, repo, "checkout", "-q", "--detach")
		must(t, repo, "branch", "feat")
		// Give feat a commit without needing an identity in the test.
		tree := must(t, repo, "write-tree")
		c, err := Git(ctx, repo, "-c", "user.name=x", "-c", "user.email=x@x", "commit-tree", tree, "-p", "feat", "-m", "empty")
		if err != nil {
			t.Fatal(err)
		}
		must(t, repo, "update-ref", "refs/heads/feat", c)
		sha, err := Merge(ctx, repo, "main", "feat", MergeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := must(t, repo, "log", "-1", "--format=%an <%ae>", sha); got != "bgagents <bgagents@localhost>" {
			t.Fatalf("author = %q", got)
		}
	})
}

func TestConcurrentReads(t *testing.T) {
	repo, base, _ := featureBranch(t)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Stat(ctx, repo, base, "feat"); err != nil {
				errs <- err
			}
			if _, err := BranchExists(ctx, repo, "feat"); err != nil {
				errs <- err
			}
			if _, err := Dirty(ctx, repo); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestCancelledContext(t *testing.T) {
	repo := newRepo(t)
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err := Git(cctx, repo, "status")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Git(cancelled) = %v", err)
	}
}

func BenchmarkStat(b *testing.B) {
	repo, base, _ := featureBranch(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Stat(ctx, repo, base, "feat"); err != nil {
			b.Fatal(err)
		}
	}
}
