package provision

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bgagents/bgagents/worktree"
)

func TestMain(m *testing.M) {
	// Helper-process modes: the test binary started again by a test.
	switch os.Getenv("PROVISION_TEST_HELPER") {
	case "":
	case "listen":
		helperListen()
		return
	}
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Setenv("GIT_AUTHOR_NAME", "provision test")
	os.Setenv("GIT_AUTHOR_EMAIL", "test@bgagents.invalid")
	os.Setenv("GIT_COMMITTER_NAME", "provision test")
	os.Setenv("GIT_COMMITTER_EMAIL", "test@bgagents.invalid")
	os.Exit(m.Run())
}

// --- helpers ---

func git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := worktree.Git(context.Background(), dir, args...)
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return out
}

func realTempDir(t testing.TB) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

func readFile(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func symlink(t testing.TB, target, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func mustf(t testing.TB, err error, format string, args ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", fmt.Sprintf(format, args...), err)
	}
}
