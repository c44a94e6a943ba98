package server_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

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

// inproc is a daemon running inside the test process, with the real shim
// (the built bgagents binary) running real agent processes.
type inproc struct {
	srv   *server.Server
	paths server.Paths
}

func startInProcess(t *testing.T, grace time.Duration) *inproc {
	t.Helper()
	home := t.TempDir()
	p := server.Paths{State: home, Run: filepath.Join(home, "run")}
	srv := server.New(server.Options{
		Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: grace,
		Logger: testLogger(), MaxMessage: 1 << 20,
	})
	srv.Start()
	d := &inproc{srv: srv, paths: p}
	t.Cleanup(func() {
		stopAgents(t, d.client(t))
		if err := srv.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return d
}

// client opens a new session over an in-memory pipe.
func (d *inproc) client(t *testing.T) *server.Client {
	t.Helper()
	a, b := net.Pipe()
	d.srv.ServeConn(a)
	c := server.NewClient(context.Background(), b)
	t.Cleanup(func() { c.Close() })
	return c
}

// stopAgents cancels every live agent so no process outlives the test.
func stopAgents(t *testing.T, c *server.Client) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res server.ListResult
	if err := c.Call(ctx, server.MethodList, server.ListParams{States: []agents.State{agents.StateQueued, agents.StateProvisioning, agents.StateRunning}}, &res); err != nil {
		return
	}
	for _, a := range res.Agents {
		_ = c.Call(ctx, server.MethodCancel, server.IDParams{ID: a.ID}, nil)
	}
}

// proc is the daemon as a separate process (`bgagents daemon`).
type proc struct {
	cmd  *exec.Cmd
	home string
	done chan struct{}
}

func startProcess(t *testing.T, home string) *proc {
	t.Helper()
	cmd := exec.Command(testenv.Bgagents(t), "daemon")
	cmd.Env = append(os.Environ(), "BGAGENTS_HOME="+home, "BGAGENTS_GRACE=1s")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, home: home, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill(syscall.SIGTERM) })
	sock := filepath.Join(home, "run", "daemon.sock")
	testenv.Eventually(t, 20*time.Second, "the daemon to answer", func() bool {
		c, err := net.Dial("unix", sock)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

func (p *proc) kill(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) client(t *testing.T) *server.Client {
	t.Helper()
	conn, err := net.Dial("unix", filepath.Join(p.home, "run", "daemon.sock"))
	if err != nil {
		t.Fatal(err)
	}
	c := server.NewClient(context.Background(), conn)
	t.Cleanup(func() { c.Close() })
	return c
}

func spawn(t *testing.T, c *server.Client, repo, task string) *agents.Agent {
	t.Helper()
	var res server.AgentResult
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodSpawn, server.SpawnParams{Task: task, Repo: repo}, &res); err != nil {
		t.Fatalf("spawn %q: %v", task, err)
	}
	return res.Agent
}

func wait(t *testing.T, c *server.Client, id string) *agents.Agent {
	t.Helper()
	var res server.AgentResult
	if err := c.Call(testenv.Context(t, 60*time.Second), server.MethodWait, server.IDParams{ID: id}, &res); err != nil {
		t.Fatalf("wait %s: %v", id, err)
	}
	return res.Agent
}

func get(t *testing.T, c *server.Client, id string) *agents.Agent {
	t.Helper()
	var res server.GetResult
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodGet, server.IDParams{ID: id}, &res); err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return res.Agent
}

// waitNote reads the client's notifications until match accepts one.
func waitNote(t *testing.T, c *server.Client, within time.Duration, what string, match func(server.Note) bool) server.Note {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case n := <-c.Notes():
			if match(n) {
				return n
			}
		case <-deadline:
			t.Fatalf("no notification %s within %s", what, within)
		}
	}
}

// agentChanged matches bgagents/agentChanged for id in one of states.
func agentChanged(id string, states ...agents.State) func(server.Note) bool {
	return func(n server.Note) bool {
		if n.Method != server.NotifyAgentChanged {
			return false
		}
		var p server.AgentChangedParams
		if json.Unmarshal(n.Params, &p) != nil || p.Agent == nil || p.Agent.ID != id {
			return false
		}
		for _, s := range states {
			if p.Agent.State == s {
				return true
			}
		}
		return false
	}
}

func writeFile(t *testing.T, path string) {
	t.Helper()
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
}

func pipe() (net.Conn, net.Conn) { return net.Pipe() }

// testLogger logs to stderr, which go test shows only when a test fails.
// (zaptest's logger panics when a goroutine logs after its test ended.)
func testLogger() *zap.Logger {
	l, err := zap.NewDevelopment()
	if err != nil {
		return zap.NewNop()
	}
	return l
}
