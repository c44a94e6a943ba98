package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

func TestMain(m *testing.M) {
	testenv.Setup()
	code := m.Run()
	testenv.Cleanup()
	os.Exit(code)
}

// cli runs the real bgagents binary in dir with an isolated home; the
// daemon it auto-starts is stopped when the test ends.
type cli struct {
	t    *testing.T
	home string
	dir  string
}

func newCLI(t *testing.T, dir string) *cli {
	c := &cli{t: t, home: t.TempDir(), dir: dir}
	t.Cleanup(func() {
		// Cancel whatever still runs, then stop the daemon.
		out, _, _ := c.run("ls", "--all", "--json")
		var as []*agents.Agent
		_ = json.Unmarshal([]byte(out), &as)
		for _, a := range as {
			if a.State.Live() {
				c.run("cancel", a.ID)
			}
		}
		c.run("daemon", "--stop")
	})
	return c
}

func (c *cli) run(args ...string) (string, string, int) {
	cmd := exec.Command(testenv.Bgagents(c.t), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "BGAGENTS_HOME="+c.home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("run %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("bgagents %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestCLIWorkflowAndExitCodes(t *testing.T) {
	repo := testenv.NewRepo(t, "")
	sub := filepath.Join(repo.Dir, "pkg")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	c := newCLI(t, sub) // from a subdirectory: --repo defaults to the enclosing repository
	out := c.ok("spawn", "--wait", "--json", "--name", "greeter", "write", "greeting.txt", "hello;", "say", "greeted")
	var a agents.Agent
	if err := json.Unmarshal([]byte(out), &a); err != nil {
		t.Fatalf("spawn --json: %v\n%s", err, out)
	}
	if a.State != agents.StateSucceeded || a.Name != "greeter" || a.Repo != repo.Dir || a.Result != "greeted" {
		t.Fatalf("record %+v", a)
	}
	for _, field := range []string{"id", "name", "task", "agent", "model", "repo", "worktree", "branch", "base", "baseCommit", "state", "exitCode", "error", "createdAt", "startedAt", "finishedAt", "result", "usage", "diff"} {
		if !strings.Contains(out, `"`+field+`"`) {
			t.Errorf("--json record lacks %q", field)
		}
	}
	if ls := c.ok("ls"); !strings.Contains(ls, "greeter") || !strings.Contains(ls, "succeeded") {
		t.Errorf("ls:\n%s", ls)
	}
	if d := c.ok("diff", "greeter"); !strings.Contains(d, "+hello") {
		t.Errorf("diff:\n%s", d)
	}
	if d := c.ok("diff", "--stat", a.ID[:5]); !strings.Contains(d, "greeting.txt") {
		t.Errorf("diff --stat:\n%s", d)
	}
	if p := strings.TrimSpace(c.ok("open", "greeter")); p != a.Worktree {
		t.Errorf("open printed %q, want %q", p, a.Worktree)
	}
	if l := c.ok("logs", "greeter"); !strings.Contains(l, "greeted") || !strings.Contains(l, "succeeded") {
		t.Errorf("logs:\n%s", l)
	}
	// Unknown and ambiguous ids exit 2 with a clear message.
	if _, errs, code := c.run("show", "no-such-agent"); code != 2 || !strings.Contains(errs, "no-such-agent") {
		t.Errorf("show unknown: exit %d %q", code, errs)
	}
	// --wait exits non-zero when the agent fails.
	if _, _, code := c.run("spawn", "--wait", "err boom; exit 4"); code == 0 {
		t.Error("spawn --wait of a failing agent exited 0")
	}
	// rm refuses unmerged work, --force discards it.
	if _, errs, code := c.run("rm", "greeter"); code == 0 || !strings.Contains(errs, "--force") {
		t.Errorf("rm of unmerged work: exit %d %q", code, errs)
	}
	c.ok("merge", "--squash", "greeter")
	if data, err := os.ReadFile(filepath.Join(repo.Dir, "greeting.txt")); err != nil || string(data) != "hello\n" {
		t.Errorf("after merge: %q %v", data, err)
	}
	if _, _, code := c.run("frobnicate"); code != 2 {
		t.Errorf("unknown command exit %d, want 2", code)
	}
	if v := c.ok("version"); !strings.HasPrefix(v, "bgagents ") {
		t.Errorf("version %q", v)
	}
	if doc := c.ok("doctor"); !strings.Contains(doc, "daemon: pid") || !strings.Contains(doc, "agent test") {
		t.Errorf("doctor:\n%s", doc)
	}
}

// Many CLI commands at once with no daemon running: exactly one daemon is
// started (the start lock), and all of them are served.
func TestConcurrentAutostartStartsOneDaemon(t *testing.T) {
	repo := testenv.NewRepo(t, "")
	c := newCLI(t, repo.Dir)
	var wg sync.WaitGroup
	codes := make([]int, 8)
	errs := make([]string, 8)
	for i := range codes {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, errs[i], codes[i] = c.run("ls")
		}(i)
	}
	wg.Wait()
	for i, code := range codes {
		if code != 0 {
			t.Fatalf("ls %d: exit %d: %s", i, code, errs[i])
		}
	}
	// A second daemon refuses to start while one serves.
	_, errOut, code := c.run("daemon")
	if code == 0 || !strings.Contains(errOut, "already running") {
		t.Fatalf("second daemon: exit %d %q", code, errOut)
	}
	// The socket is private.
	st, err := os.Stat(filepath.Join(c.home, "run", "daemon.sock"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", st.Mode(), err)
	}
	dir, _ := os.Stat(filepath.Join(c.home, "run"))
	if dir.Mode().Perm() != 0o700 {
		t.Fatalf("socket dir mode %v", dir.Mode())
	}
	// Stopping the daemon leaves no socket; the next command starts one.
	c.ok("daemon", "--stop")
	testenv.Eventually(t, 10*time.Second, "the socket to be removed", func() bool {
		_, err := os.Stat(filepath.Join(c.home, "run", "daemon.sock"))
		return os.IsNotExist(err)
	})
	c.ok("ls")
}

func TestMissingAgentCLIFailsSpawnAtOnce(t *testing.T) {
	repo := testenv.NewRepo(t, "\n[agents.ghost]\ncommand = [\"definitely-not-installed-agent\", \"{prompt}\"]\n")
	c := newCLI(t, repo.Dir)
	_, errs, code := c.run("spawn", "--agent", "ghost", "do things")
	if code == 0 || !strings.Contains(errs, "definitely-not-installed-agent") || !strings.Contains(errs, "PATH") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if out := c.ok("ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("a failed spawn left a record: %s", out)
	}
}

// stdio joins a child's stdout and stdin into one connection.
type stdio struct {
	io.Reader
	io.WriteCloser
}

// `bgagents lsp` is what editors start: it auto-starts the daemon and
// relays LSP over stdio; exit ends it while agents keep running.
func TestLSPForwarderOverStdio(t *testing.T) {
	repo := testenv.NewRepo(t, "")
	c := newCLI(t, repo.Dir)
	cmd := exec.Command(testenv.Bgagents(t), "lsp")
	cmd.Dir = repo.Dir
	cmd.Env = append(os.Environ(), "BGAGENTS_HOME="+c.home)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	ctx := testenv.Context(t, 60*time.Second)
	conn := jsonrpc2.NewConn(server.NewStream(stdio{out, in}, server.DefaultMaxMessage))
	changed := make(chan *agents.Agent, 64)
	conn.Go(ctx, func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		if req.Method() == server.NotifyAgentChanged {
			var p server.AgentChangedParams
			if json.Unmarshal(req.Params(), &p) == nil {
				changed <- p.Agent
			}
		}
		if _, ok := req.(*jsonrpc2.Call); ok {
			return reply(ctx, nil, nil)
		}
		return nil
	})
	var init map[string]any
	if _, err := conn.Call(ctx, "initialize", map[string]any{
		"processId": os.Getpid(), "rootUri": "file://" + repo.Dir,
		"capabilities": map[string]any{"experimental": map[string]any{"bgagents": map[string]any{"notifications": true}}},
	}, &init); err != nil {
		t.Fatalf("initialize: %v (%s)", err, stderr.String())
	}
	if info, _ := init["serverInfo"].(map[string]any); info["name"] != "bgagents" {
		t.Fatalf("serverInfo %v", init["serverInfo"])
	}
	_ = conn.Notify(ctx, "initialized", map[string]any{})
	// The CLI spawns; the editor session hears about it.
	id := strings.TrimSpace(c.ok("spawn", "write from-cli.txt hi"))
	deadline := time.After(30 * time.Second)
	for finished := false; !finished; {
		select {
		case a := <-changed:
			finished = a.ID == id && a.State == agents.StateSucceeded
		case <-deadline:
			t.Fatal("the editor session got no agentChanged for the CLI's agent")
		}
	}
	if _, err := conn.Call(ctx, "shutdown", nil, nil); err != nil {
		t.Fatal(err)
	}
	_ = conn.Notify(ctx, "exit", nil)
	select {
	case <-done:
		if waitErr != nil {
			t.Fatalf("bgagents lsp exited with %v: %s", waitErr, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bgagents lsp did not exit after exit")
	}
}

// `spawn --wait` outlives a daemon restart: it reconnects, a new daemon
// re-adopts the agent, and the wait ends with the agent's real outcome.
func TestSpawnWaitSurvivesDaemonRestart(t *testing.T) {
	repo := testenv.NewRepo(t, "")
	c := newCLI(t, repo.Dir)
	gate := filepath.Join(t.TempDir(), "gate")
	cmd := exec.Command(testenv.Bgagents(t), "spawn", "--wait", "--name", "patient", "waitfile "+gate+"; write done.txt yes")
	cmd.Dir = repo.Dir
	cmd.Env = append(os.Environ(), "BGAGENTS_HOME="+c.home)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	testenv.Eventually(t, 30*time.Second, "the agent to run", func() bool {
		o, _, _ := c.run("show", "--json", "patient")
		return strings.Contains(o, `"state": "running"`)
	})
	c.ok("daemon", "--stop")
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("spawn --wait: %v\n%s%s", err, out.String(), errb.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("spawn --wait still blocked after the daemon restart\n%s", errb.String())
	}
	if show := c.ok("show", "--json", "patient"); !strings.Contains(show, `"state": "succeeded"`) {
		t.Fatalf("agent after restart:\n%s", show)
	}
}
