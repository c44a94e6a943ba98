// Package testenv builds the binaries and git repositories the integration
// tests run against: the real bgagents binary, the scripted test agent and
// real git repositories in temporary directories.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// moduleRoot is the directory holding go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Setup isolates the process from the developer's git and bgagents config.
// Call it from TestMain before m.Run.
func Setup() {
	os.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	os.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	os.Setenv("BGAGENTS_CONFIG", filepath.Join(os.TempDir(), "bgagents-test-no-user-config.toml"))
	os.Setenv("GIT_AUTHOR_NAME", "bgagents test")
	os.Setenv("GIT_AUTHOR_EMAIL", "test@bgagents.invalid")
	os.Setenv("GIT_COMMITTER_NAME", "bgagents test")
	os.Setenv("GIT_COMMITTER_EMAIL", "test@bgagents.invalid")
}

// Cleanup removes the built binaries; call it from TestMain after m.Run.
func Cleanup() {
	if binDir != "" {
		os.RemoveAll(binDir)
	}
}

func build() {
	binDir, buildErr = os.MkdirTemp("", "bgagents-bin-")
	if buildErr != nil {
		return
	}
	for _, b := range []struct{ out, pkg string }{
		{"bgagents", "./cmd/bgagents"},
		{"testagent", "./internal/testagent"},
	} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, b.out), b.pkg)
		cmd.Dir = moduleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
			return
		}
	}
}

// Bgagents returns the path of the freshly built bgagents binary.
func Bgagents(t testing.TB) string {
	t.Helper()
	buildOnce.Do(build)
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "bgagents")
}

// TestAgent returns the path of the scripted test agent.
func TestAgent(t testing.TB) string {
	t.Helper()
	Bgagents(t)
	return filepath.Join(binDir, "testagent")
}

// Git runs git in dir and returns its trimmed output, failing the test on error.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// Repo is a real git repository with one commit on main and a
// .bgagents.toml whose default agent "test" is the scripted test agent.
type Repo struct {
	Dir string
}

// NewRepo creates a repository in a fresh temporary directory; extra is
// appended to .bgagents.toml.
func NewRepo(t testing.TB, extra string) *Repo {
	t.Helper()
	root := t.TempDir()
	dir := filepath.Join(root, "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "init", "-q", "-b", "main")
	Git(t, dir, "config", "user.name", "bgagents test")
	Git(t, dir, "config", "user.email", "test@bgagents.invalid")
	cfg := fmt.Sprintf("[defaults]\nagent = \"test\"\nmax_concurrent = 4\n\n[agents.test]\ncommand = [%q, \"{prompt}\"]\n%s", TestAgent(t), extra)
	if err := os.WriteFile(filepath.Join(dir, ".bgagents.toml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("# test repo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	Git(t, dir, "add", "-A")
	Git(t, dir, "commit", "-q", "-m", "initial commit")
	r := &Repo{Dir: dir}
	t.Cleanup(func() {
		// Worktrees live beside the repo in root; TempDir removes them.
		// Prune so a failed test leaves no dangling worktree metadata.
		exec.Command("git", "-C", dir, "worktree", "prune").Run() //nolint:errcheck
	})
	return r
}

// Eventually polls cond until it is true or the deadline passes. It is for
// state that has no event to wait on (a process vanishing, a file
// appearing); the interval is short and the deadline generous.
func Eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ProcessGone reports whether pid no longer runs (or is a zombie).
func ProcessGone(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return true
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// Context returns a context that ends with the test (or after d).
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
