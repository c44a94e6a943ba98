// Package worktree runs git: worktrees and branches for agents, diffs, commits, merges and conflict checks.
//
// Every git process goes through one runner (Git and its unexported twin
// run): the git binary is started directly, never through a shell, with
// pinned flags and a pinned environment so that user configuration
// (pagers, colours, quoted paths, locale) cannot change what is parsed.
package worktree

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"
)

// pinnedFlags go before every git subcommand.
var pinnedFlags = []string{
	"--no-pager",
	"-c", "core.quotepath=off",
	"-c", "color.ui=false",
}

// pinnedEnv is appended to the inherited environment; later entries win.
var pinnedEnv = []string{
	"LC_ALL=C",
	"LANGUAGE=C",
	"GIT_TERMINAL_PROMPT=0",
	"GIT_PAGER=cat",
	"PAGER=cat",
	// Status-like reads must not take index.lock while an agent works in
	// the same checkout.
	"GIT_OPTIONAL_LOCKS=0",
}

// droppedEnv names variables that would point git at another repository
// than the one asked for (they leak in when the daemon is started from a
// git hook).
var droppedEnv = map[string]bool{
	"GIT_DIR":                          true,
	"GIT_WORK_TREE":                    true,
	"GIT_INDEX_FILE":                   true,
	"GIT_COMMON_DIR":                   true,
	"GIT_OBJECT_DIRECTORY":             true,
	"GIT_ALTERNATE_OBJECT_DIRECTORIES": true,
	"GIT_NAMESPACE":                    true,
	"GIT_PREFIX":                       true,
	"GIT_QUARANTINE_PATH":              true,
}

// GitError is returned when git exits with a non-zero status.
type GitError struct {
	Args     []string // arguments after the pinned flags
	Dir      string   // working directory of the process
	ExitCode int
	Stderr   string
}

// Error returns "git <args>: exit N: <first lines of stderr>".
func (e *GitError) Error() string {
	msg := fmt.Sprintf("git %s: exit %d", strings.Join(e.Args, " "), e.ExitCode)
	if s := firstLines(e.Stderr, 3); s != "" {
		msg += ": " + s
	}
	return msg
}

// firstLines returns up to n non-empty, non-hint lines of s joined by "; ".
func firstLines(s string, n int) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "hint:") {
			continue
		}
		out = append(out, line)
		if len(out) == n {
			break
		}
	}
	return strings.Join(out, "; ")
}

// runOpts tunes one git invocation.
type runOpts struct {
	stdin io.Reader
	env   []string // extra KEY=VALUE entries
	ok    []int    // non-zero exit codes that are answers, not failures
}

// Git runs the git CLI in dir with pinned flags and environment and returns
// its stdout with trailing newlines removed. A non-zero exit yields a
// *GitError carrying git's stderr.
func Git(ctx context.Context, dir string, args ...string) (string, error) {
	out, _, err := run(ctx, dir, runOpts{}, args...)
	return trimNL(out), err
}

// run is the single place that starts git. It returns stdout, the exit
// code (0 or one of opt.ok) and an error for any other outcome.
func run(ctx context.Context, dir string, opt runOpts, args ...string) ([]byte, int, error) {
	full := make([]string, 0, len(pinnedFlags)+len(args))
	full = append(full, pinnedFlags...)
	full = append(full, args...)
	cmd := exec.CommandContext(ctx, "git", full...)
	cmd.Dir = dir
	cmd.Env = gitEnv(opt.env)
	cmd.Stdin = opt.stdin
	cmd.WaitDelay = 5 * time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		return stdout.Bytes(), 0, nil
	}
	if ctx.Err() != nil {
		return nil, -1, fmt.Errorf("git %s: %w", strings.Join(args, " "), ctx.Err())
	}
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) {
		return nil, -1, fmt.Errorf("run git %s: %w", strings.Join(args, " "), err)
	}
	code := exitErr.ExitCode()
	for _, c := range opt.ok {
		if c == code {
			return stdout.Bytes(), code, nil
		}
	}
	return stdout.Bytes(), code, &GitError{
		Args:     append([]string(nil), args...),
		Dir:      dir,
		ExitCode: code,
		Stderr:   stderr.String(),
	}
}

func gitEnv(extra []string) []string {
	base := os.Environ()
	env := make([]string, 0, len(base)+len(pinnedEnv)+len(extra))
	for _, kv := range base {
		k, _, _ := strings.Cut(kv, "=")
		if !droppedEnv[k] {
			env = append(env, kv)
		}
	}
	env = append(env, pinnedEnv...)
	return append(env, extra...)
}

func trimNL(b []byte) string {
	return strings.TrimRight(string(b), "\r\n")
}

// splitNUL splits -z output into fields, dropping the final terminator.
func splitNUL(b []byte) []string {
	s := strings.TrimSuffix(string(b), "\x00")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\x00")
}

// checkRev rejects revisions git could read as options.
func checkRev(rev string) error {
	if rev == "" {
		return errors.New("empty revision")
	}
	if strings.HasPrefix(rev, "-") {
		return fmt.Errorf("invalid revision %q", rev)
	}
	return nil
}

// Version returns the git version, e.g. "2.39.5".
func Version(ctx context.Context) (string, error) {
	out, err := Git(ctx, "", "version")
	if err != nil {
		return "", fmt.Errorf("git version: %w", err)
	}
	f := strings.Fields(out)
	if len(f) < 3 || f[0] != "git" || f[1] != "version" {
		return "", fmt.Errorf("git version: unexpected output %q", out)
	}
	return f[2], nil
}
