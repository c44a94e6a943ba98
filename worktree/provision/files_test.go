package provision

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// repoWithWorktree makes a main checkout with tracked, ignored and
// untracked files and a linked worktree of it, and returns both paths.
func repoWithWorktree(t *testing.T) (main, wt string) {
	t.Helper()
	root := realTempDir(t)
	main = filepath.Join(root, "main")
	wt = filepath.Join(root, "wt")
	mustf(t, os.Mkdir(main, 0o755), "mkdir")
	git(t, main, "init", "-q", "-b", "main")
	writeFile(t, filepath.Join(main, ".gitignore"), "node_modules/\n.env\nbuild/\nconfig/local.yml\n/escape\n/dangling\n", 0o644)
	writeFile(t, filepath.Join(main, "README"), "readme\n", 0o644)
	writeFile(t, filepath.Join(main, "config", "app.yml"), "app: 1\n", 0o644)
	writeFile(t, filepath.Join(main, "build", "keep.txt"), "kept\n", 0o644)
	git(t, main, "add", ".gitignore", "README", "config/app.yml")
	git(t, main, "add", "-f", "build/keep.txt") // tracked inside an ignored directory
	git(t, main, "commit", "-q", "-m", "init")
	git(t, main, "worktree", "add", "-q", "-b", "agent", wt)
	return main, wt
}

func TestCopyIgnored(t *testing.T) {
	main, wt := repoWithWorktree(t)
	nm := filepath.Join(main, "node_modules")
	writeFile(t, filepath.Join(nm, "a", "index.js"), "module.exports = 1\n", 0o644)
	writeFile(t, filepath.Join(nm, "a", "bin", "cli"), "#!/bin/sh\necho cli\n", 0o755)
	writeFile(t, filepath.Join(nm, "a", "empty"), "", 0o640)
	writeFile(t, filepath.Join(nm, "deep", "x", "y", "z", "leaf.txt"), "leaf\n", 0o600)
	writeFile(t, filepath.Join(nm, "ro", "locked.txt"), "locked\n", 0o444)
	mustf(t, os.Chmod(filepath.Join(nm, "ro"), 0o555), "chmod")
	t.Cleanup(func() { // for TempDir's removal when not root
		os.Chmod(filepath.Join(nm, "ro"), 0o755)
		os.Chmod(filepath.Join(wt, "node_modules", "ro"), 0o755)
	})
	symlink(t, "../a/bin/cli", filepath.Join(nm, ".bin", "cli"))          // relative, inside
	symlink(t, filepath.Join(nm, "a"), filepath.Join(nm, "abs"))          // absolute, inside the checkout
	symlink(t, "/etc", filepath.Join(nm, "outside"))                      // absolute, outside: kept, never followed
	symlink(t, "../../README", filepath.Join(nm, "a", "readme-link"))     // relative, out of the copied tree
	symlink(t, "no-such-file", filepath.Join(nm, "a", "dangling-inside")) // dangling symlink inside a tree
	writeFile(t, filepath.Join(main, ".env"), "SECRET=1\n", 0o600)
	writeFile(t, filepath.Join(main, "config", "local.yml"), "local: 1\n", 0o644)
	writeFile(t, filepath.Join(main, "notes.txt"), "untracked, not ignored\n", 0o644)
	if err := syscall.Mkfifo(filepath.Join(nm, "a", "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, p := range []string{filepath.Join(nm, "a", "index.js"), filepath.Join(main, ".env"), filepath.Join(nm, "a")} {
		mustf(t, os.Chtimes(p, old, old), "chtimes")
	}

	skipped, err := CopyIgnored(context.Background(), main, wt,
		[]string{"node_modules/", ".env", "config/local.yml", "README", "notes.txt", "build", "node_modules/a"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"README", "notes.txt", "build"}; !slices.Equal(skipped, want) {
		t.Errorf("skipped = %q; want %q", skipped, want)
	}

	// Contents and modes.
	for _, rel := range []string{
		"node_modules/a/index.js", "node_modules/a/bin/cli", "node_modules/a/empty",
		"node_modules/deep/x/y/z/leaf.txt", "node_modules/ro/locked.txt", ".env", "config/local.yml",
	} {
		src, dst := filepath.Join(main, rel), filepath.Join(wt, rel)
		if got, want := readFile(t, dst), readFile(t, src); got != want {
			t.Errorf("%s: content %q; want %q", rel, got, want)
		}
		si, err1 := os.Lstat(src)
		di, err2 := os.Lstat(dst)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		if si.Mode() != di.Mode() {
			t.Errorf("%s: mode %v; want %v", rel, di.Mode(), si.Mode())
		}
		if !si.ModTime().Equal(di.ModTime()) {
			t.Errorf("%s: mtime %v; want %v", rel, di.ModTime(), si.ModTime())
		}
		// Not a hardlink: another inode, one link, and a write to the copy
		// leaves the original alone.
		if os.SameFile(si, di) {
			t.Errorf("%s: the copy is the same file as the original", rel)
		}
		sst, dst2 := si.Sys().(*syscall.Stat_t), di.Sys().(*syscall.Stat_t)
		if sst.Ino == dst2.Ino && sst.Dev == dst2.Dev {
			t.Errorf("%s: same inode %d", rel, sst.Ino)
		}
		if dst2.Nlink != 1 {
			t.Errorf("%s: the copy has %d links", rel, dst2.Nlink)
		}
	}
	for _, rel := range []string{"node_modules/ro", "node_modules/a", "node_modules/deep/x"} {
		si, _ := os.Stat(filepath.Join(main, rel))
		di, err := os.Stat(filepath.Join(wt, rel))
		if err != nil {
			t.Fatal(err)
		}
		if si.Mode() != di.Mode() || !si.ModTime().Equal(di.ModTime()) {
			t.Errorf("dir %s: %v %v; want %v %v", rel, di.Mode(), di.ModTime(), si.Mode(), si.ModTime())
		}
	}
	if got := mtime(t, filepath.Join(wt, "node_modules/a/index.js")); !got.Equal(old) {
		t.Errorf("mtime of index.js = %v; want %v", got, old)
	}

	// Writing to the copy does not change the original.
	copyEnv := filepath.Join(wt, ".env")
	mustf(t, os.WriteFile(copyEnv, []byte("SECRET=changed\n"), 0o600), "write")
	if got := readFile(t, filepath.Join(main, ".env")); got != "SECRET=1\n" {
		t.Errorf("original .env changed to %q", got)
	}
	f, err := os.OpenFile(filepath.Join(wt, "node_modules/a/index.js"), os.O_WRONLY|os.O_APPEND, 0)
	mustf(t, err, "open")
	f.WriteString("// agent edit\n")
	f.Close()
	if got := readFile(t, filepath.Join(nm, "a/index.js")); got != "module.exports = 1\n" {
		t.Errorf("original index.js changed to %q", got)
	}

	// Symlinks are symlinks; relative targets kept, absolute ones into the
	// checkout made relative links into the worktree, others kept.
	for rel, want := range map[string]string{
		"node_modules/.bin/cli":          "../a/bin/cli",
		"node_modules/abs":               "a",
		"node_modules/outside":           "/etc",
		"node_modules/a/readme-link":     "../../README",
		"node_modules/a/dangling-inside": "no-such-file",
	} {
		p := filepath.Join(wt, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode()&os.ModeSymlink == 0 {
			t.Errorf("%s is %v, not a symlink", rel, fi.Mode())
			continue
		}
		if got, _ := os.Readlink(p); got != want {
			t.Errorf("%s -> %q; want %q", rel, got, want)
		}
	}
	if got := readFile(t, filepath.Join(wt, "node_modules/.bin/cli")); !strings.Contains(got, "echo cli") {
		t.Errorf("node_modules/.bin/cli reads %q", got)
	}
	// The FIFO is skipped.
	if _, err := os.Lstat(filepath.Join(wt, "node_modules/a/fifo")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("fifo copied: %v", err)
	}
	// Untracked, not ignored: not copied; tracked: the checkout's own.
	if _, err := os.Lstat(filepath.Join(wt, "notes.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("notes.txt copied: %v", err)
	}
	// The agent's git status is clean: everything copied is ignored.
	if st := git(t, wt, "status", "--porcelain"); st != "" {
		t.Errorf("git status in the worktree:\n%s", st)
	}
}

func mtime(t testing.TB, p string) time.Time {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.ModTime()
}

func TestCopyIgnoredErrors(t *testing.T) {
	main, wt := repoWithWorktree(t)
	outside := realTempDir(t)
	writeFile(t, filepath.Join(outside, "secret"), "s\n", 0o644)
	symlink(t, outside, filepath.Join(main, "escape"))
	symlink(t, filepath.Join(main, "nowhere"), filepath.Join(main, "dangling"))
	writeFile(t, filepath.Join(main, ".env"), "x\n", 0o644)
	ctx := context.Background()

	for _, tc := range []struct {
		paths []string
		want  string
	}{
		{[]string{"node_modules"}, "copy node_modules: " + filepath.Join(main, "node_modules") +
			" does not exist; remove it from [worktree] copy or create it"},
		{[]string{"../x"}, `copy ../x: paths may not contain ".."`},
		{[]string{"a/../../x"}, `paths may not contain ".."`},
		{[]string{"/etc/passwd"}, "copy /etc/passwd: absolute paths are not allowed"},
		{[]string{"escape"}, "outside the checkout"},
		{[]string{"escape/secret"}, "outside the checkout"},
		{[]string{"dangling"}, "symlink to something that does not exist"},
		{[]string{".git/config"}, "inside .git"},
		{[]string{"."}, "whole checkout"},
		{[]string{""}, "empty path"},
	} {
		skipped, err := CopyIgnored(ctx, main, wt, tc.paths)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CopyIgnored(%q) = %q, %v; want error containing %q", tc.paths, skipped, err, tc.want)
		}
	}
	// Nothing was copied by the failed calls, not even the valid .env
	// listed before a missing path.
	if _, err := CopyIgnored(ctx, main, wt, []string{".env", "node_modules"}); err == nil {
		t.Fatal("missing node_modules accepted")
	}
	if _, err := os.Lstat(filepath.Join(wt, ".env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".env copied by a failed call: %v", err)
	}

	// A destination that exists already.
	writeFile(t, filepath.Join(wt, ".env"), "mine\n", 0o644)
	if _, err := CopyIgnored(ctx, main, wt, []string{".env"}); err == nil || !strings.Contains(err.Error(), "already exists in the worktree") {
		t.Errorf("existing destination: %v", err)
	}
	if got := readFile(t, filepath.Join(wt, ".env")); got != "mine\n" {
		t.Errorf("existing .env overwritten: %q", got)
	}
}

// TestCopyIgnoredRollback makes the copy fail half-way (a destination
// directory that cannot be written to) and checks that what was copied
// before is removed.
func TestCopyIgnoredRollback(t *testing.T) {
	main, wt := repoWithWorktree(t)
	for i := range 50 {
		writeFile(t, filepath.Join(main, "node_modules", "p", string(rune('a'+i%26))+strings.Repeat("x", i)), "x\n", 0o644)
	}
	writeFile(t, filepath.Join(main, "config", "local.yml"), "local\n", 0o644)
	cfg := filepath.Join(wt, "config")
	if os.Geteuid() == 0 {
		// root writes through permissions; an immutable directory stops it.
		if out, err := exec.Command("chattr", "+i", cfg).CombinedOutput(); err != nil {
			t.Skipf("chattr +i: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command("chattr", "-i", cfg).Run() })
	} else {
		mustf(t, os.Chmod(cfg, 0o555), "chmod")
		t.Cleanup(func() { os.Chmod(cfg, 0o755) })
	}
	_, err := CopyIgnored(context.Background(), main, wt, []string{"node_modules", "config/local.yml"})
	if err == nil || !strings.Contains(err.Error(), "copy config/local.yml") {
		t.Fatalf("err = %v; want a failure copying config/local.yml", err)
	}
	if _, err := os.Lstat(filepath.Join(wt, "node_modules")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node_modules left behind after the failure: %v", err)
	}
}

func TestCopyIgnoredCanceled(t *testing.T) {
	main, wt := repoWithWorktree(t)
	writeFile(t, filepath.Join(main, ".env"), "x\n", 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := CopyIgnored(ctx, main, wt, []string{".env"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	if _, err := os.Lstat(filepath.Join(wt, ".env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf(".env copied after cancel: %v", err)
	}
}

// .worktreeinclude is read by git with gitignore syntax (negations,
// directory patterns, "**"), and only what git also ignores is selected:
// never a tracked file, never an untracked file git does not ignore.
func TestWorktreeInclude(t *testing.T) {
	main, wt := repoWithWorktree(t)
	if got, err := WorktreeInclude(context.Background(), main); err != nil || got != nil {
		t.Fatalf("without the file: %q, %v", got, err)
	}
	writeFile(t, filepath.Join(main, ".gitignore"), strings.Join([]string{
		"node_modules/", ".env*", "!.env.example", "build/", "config/local.*", "*.log", ".venv/", "packages/*/.env",
	}, "\n")+"\n", 0o644)
	for _, f := range []string{
		"node_modules/a/x.js", "node_modules/.cache/c", ".env", ".env.local", ".env.example",
		"config/local.yml", "config/local.json", "src/debug.log", ".venv/bin/python",
		"packages/a/.env", "packages/b/.env", "build/out.bin", "notes.txt",
	} {
		writeFile(t, filepath.Join(main, f), "x\n", 0o644)
	}
	writeFile(t, filepath.Join(main, ".worktreeinclude"), strings.Join([]string{
		"# what the agents need",
		"",
		"node_modules", // a directory: one path, not its files
		".env*",        // .env, .env.local, and .env.example, which git does not ignore
		"!.env.local",  // negation
		"config/",      // a directory pattern: its ignored files (app.yml is tracked)
		"**/debug.log", // "**"
		"packages/**/.env",
		"!packages/b/.env",
		"build/",    // build/keep.txt is tracked, build/out.bin ignored
		"notes.txt", // untracked, not ignored: its copy would be committed
		"README",    // tracked
	}, "\n")+"\n", 0o644)
	got, err := WorktreeInclude(context.Background(), main)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{".env", "build/out.bin", "config/local.json", "config/local.yml", "node_modules", "packages/a/.env", "src/debug.log"}
	if !slices.Equal(got, want) {
		t.Errorf("WorktreeInclude = %q; want %q", got, want)
	}
	// What it selects, CopyIgnored copies: nothing is skipped.
	if skipped, err := CopyIgnored(context.Background(), main, wt, got); err != nil || len(skipped) > 0 {
		t.Fatalf("CopyIgnored: skipped %q, %v", skipped, err)
	}
	for _, f := range []string{"node_modules/.cache/c", "config/local.json", "packages/a/.env", "build/out.bin"} {
		if _, err := os.Stat(filepath.Join(wt, f)); err != nil {
			t.Errorf("%s not copied: %v", f, err)
		}
	}

	// Negating inside a directory works when the pattern names its
	// contents, not the directory (as in .gitignore).
	writeFile(t, filepath.Join(main, ".worktreeinclude"), "node_modules/*\n!node_modules/.cache\n", 0o644)
	if got, err := WorktreeInclude(context.Background(), main); err != nil || !slices.Equal(got, []string{"node_modules/a"}) {
		t.Errorf("WorktreeInclude = %q, %v; want [node_modules/a]", got, err)
	}
	// Nothing matches: nothing selected.
	writeFile(t, filepath.Join(main, ".worktreeinclude"), "does-not-exist\n", 0o644)
	if got, err := WorktreeInclude(context.Background(), main); err != nil || len(got) != 0 {
		t.Errorf("WorktreeInclude = %q, %v; want nothing", got, err)
	}
}

func TestInnermostAndIntersectPaths(t *testing.T) {
	if got, want := innermost([]string{"packages", "packages/a", "packages/a/.env", "packages-x", "src", "src/debug.log", "node_modules"}),
		[]string{"node_modules", "packages-x", "packages/a/.env", "src/debug.log"}; !slices.Equal(got, want) {
		t.Errorf("innermost = %q; want %q", got, want)
	}
	a := []string{"node_modules", "config/local.yml", "x/y", "only"}
	b := []string{"node_modules", "config", "x/y/z", "x/y/w", "other"}
	want := []string{"config/local.yml", "node_modules", "x/y/w", "x/y/z"}
	if got := intersectPaths(a, b); !slices.Equal(got, want) {
		t.Errorf("intersectPaths = %q; want %q", got, want)
	}
}

// An absolute symlink into the main checkout becomes a relative link, so
// it still resolves after the worktree moves (`git worktree move`, as when
// a pool worktree is claimed).
func TestCopyIgnoredSymlinksSurviveAMove(t *testing.T) {
	main, wt := repoWithWorktree(t)
	writeFile(t, filepath.Join(main, "node_modules", "a", "index.js"), "a\n", 0o644)
	writeFile(t, filepath.Join(main, ".env"), "A=1\n", 0o644)
	symlink(t, filepath.Join(main, "node_modules", "a", "index.js"), filepath.Join(main, "node_modules", ".bin", "a"))
	symlink(t, filepath.Join(main, ".env"), filepath.Join(main, "node_modules", "env"))
	if _, err := CopyIgnored(context.Background(), main, wt, []string{"node_modules", ".env"}); err != nil {
		t.Fatal(err)
	}
	moved := filepath.Join(filepath.Dir(wt), "moved")
	git(t, main, "worktree", "move", wt, moved)
	for rel, want := range map[string]string{"node_modules/.bin/a": "../a/index.js", "node_modules/env": "../.env"} {
		p := filepath.Join(moved, rel)
		if got, err := os.Readlink(p); err != nil || got != want {
			t.Errorf("%s -> %q (%v); want %q", rel, got, err, want)
		}
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s dangles after the move: %v", rel, err)
		}
	}
}
