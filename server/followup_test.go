package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// These tests drive the daemon's follow-up, limit and stall logic with the
// scripted test agent configured as a vendor CLI's binary: it prints lines
// in the vendor's captured output format (so the real claude and codex
// parsers run), and records the argv it was given. The real CLIs against a
// fake model server are tested in agents/providers/e2e.

func vendorRepo(t *testing.T, extra string) *testenv.Repo {
	ta := testenv.TestAgent(t)
	return testenv.NewRepo(t, fmt.Sprintf("\n[agents.claude]\nbinary = %q\npermission_mode = \"default\"\n\n[agents.codex]\nbinary = %q\n%s", ta, ta, extra))
}

func compact(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(string(b), "; ") {
		t.Fatalf("script line must not contain spaces or ';': %s", b)
	}
	return string(b)
}

func spawnWith(t *testing.T, c *server.Client, p server.SpawnParams) *agents.Agent {
	t.Helper()
	var res server.AgentResult
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodSpawn, p, &res); err != nil {
		t.Fatalf("spawn: %v", err)
	}
	return res.Agent
}

func TestNeedsInputThenMessageResumesSession(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := vendorRepo(t, "")
	c := d.client(t)
	initLine := compact(t, map[string]any{"type": "system", "subtype": "init", "session_id": "sess-1", "model": "claude-test"})
	denied := compact(t, map[string]any{
		"type": "result", "subtype": "success", "is_error": false, "num_turns": 2, "result": "I-could-not-write-the-file.",
		"session_id": "sess-1", "total_cost_usd": 0.002, "usage": map[string]any{"input_tokens": 200, "output_tokens": 40},
		"permission_denials": []any{map[string]any{"tool_name": "Write", "tool_use_id": "t1", "tool_input": map[string]any{"file_path": "/w/hello.txt", "content": "hi"}}},
	})
	a := spawnWith(t, c, server.SpawnParams{Agent: "claude", Repo: repo.Dir, Task: "json " + initLine + "; json " + denied})
	a = wait(t, c, a.ID)
	if a.State != agents.StateNeedsInput {
		t.Fatalf("state %s (%s), want needs_input", a.State, a.Error)
	}
	if len(a.Questions) != 1 || a.Questions[0].Tool != "Write" || a.SessionID != "sess-1" || !strings.Contains(a.Error, "Write") {
		t.Fatalf("questions %+v session %q error %q", a.Questions, a.SessionID, a.Error)
	}
	if _, err := os.Stat(a.Worktree); err != nil {
		t.Fatal("a needs_input agent's worktree must be kept")
	}
	argvFile := filepath.Join(t.TempDir(), "argv")
	done := compact(t, map[string]any{"type": "result", "subtype": "success", "is_error": false, "num_turns": 1, "result": "Created-hello.txt.", "session_id": "sess-1", "total_cost_usd": 0.001, "usage": map[string]any{"input_tokens": 100, "output_tokens": 20}})
	var res server.AgentResult
	if err := c.Call(context.Background(), server.MethodMessage, server.MessageParams{ID: a.Name, Text: "argv " + argvFile + "; write hello.txt hi; json " + done, AllowDenied: true}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Agent.State != agents.StateRunning {
		t.Fatalf("state after message %s, want running", res.Agent.State)
	}
	a = wait(t, c, a.ID)
	if a.State != agents.StateSucceeded || a.Result != "Created-hello.txt." || a.Runs != 2 {
		t.Fatalf("after follow-up: %s result %q runs %d error %q", a.State, a.Result, a.Runs, a.Error)
	}
	if a.Usage.InputTokens != 300 || a.Usage.OutputTokens != 60 || a.Usage.CostUSD < 0.0029 || a.Usage.CostUSD > 0.0031 {
		t.Errorf("usage over both runs %+v, want 300/60 and $0.003", a.Usage)
	}
	data, err := os.ReadFile(argvFile)
	if err != nil {
		t.Fatal(err)
	}
	argv := strings.Split(string(data), "\n")
	joined := strings.Join(argv, " ")
	if !strings.Contains(joined, "--resume sess-1") || !strings.Contains(joined, "--allowedTools Write") {
		t.Fatalf("follow-up argv %q lacks --resume sess-1 / --allowedTools Write", joined)
	}
	if a.Diff.Files != 1 {
		t.Errorf("follow-up's file not committed: %+v", a.Diff)
	}
	// The log shows the user's message between the runs.
	var lr server.LogResult
	if err := c.Call(context.Background(), server.MethodLog, server.LogParams{ID: a.ID}, &lr); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, ev := range lr.Events {
		found = found || ev.Kind == "message" && strings.Contains(ev.Text, "write hello.txt")
	}
	if !found {
		t.Error("the follow-up message is not in the log")
	}
	// A message to a running or finished-and-merged agent is refused.
	if err := c.Call(context.Background(), server.MethodMessage, server.MessageParams{ID: a.ID, Text: " "}, nil); rpcCode(err) != -32602 {
		t.Errorf("empty message: %v", err)
	}
}

func TestTokenBudgetStopsTheAgent(t *testing.T) {
	d := startInProcess(t, 300*time.Millisecond)
	repo := vendorRepo(t, "")
	c := d.client(t)
	msg := compact(t, map[string]any{"type": "assistant", "session_id": "s", "message": map[string]any{
		"id": "m1", "type": "message", "role": "assistant", "content": []any{map[string]any{"type": "text", "text": "thinking"}},
		"usage": map[string]any{"input_tokens": 150, "output_tokens": 10},
	}})
	a := spawnWith(t, c, server.SpawnParams{Agent: "claude", Repo: repo.Dir, Task: "json " + msg + "; hang", BudgetTokens: 100})
	a = wait(t, c, a.ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "budget exceeded") {
		t.Fatalf("state %s error %q, want failed over budget", a.State, a.Error)
	}
}

func TestTurnLimitCountedForVendorsWithoutAFlag(t *testing.T) {
	d := startInProcess(t, 300*time.Millisecond)
	repo := vendorRepo(t, "")
	c := d.client(t)
	var steps []string
	for i := 1; i <= 3; i++ {
		steps = append(steps, "json "+compact(t, map[string]any{"type": "item.started", "item": map[string]any{"id": fmt.Sprintf("item_%d", i), "type": "command_execution", "command": "ls", "status": "in_progress"}}))
	}
	a := spawnWith(t, c, server.SpawnParams{Agent: "codex", Repo: repo.Dir, Task: strings.Join(steps, "; ") + "; hang", MaxTurns: 2})
	a = wait(t, c, a.ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "turn limit") {
		t.Fatalf("state %s error %q, want failed at the turn limit", a.State, a.Error)
	}
}

func TestStallIsReportedAndCleared(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	cfg := filepath.Join(repo.Dir, ".bgagents.toml")
	data, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), "max_concurrent = 4", "max_concurrent = 4\nstall_timeout = \"300ms\"", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := d.client(t)
	gate := filepath.Join(t.TempDir(), "gate")
	a := spawn(t, c, repo.Dir, "say started; waitfile "+gate+"; say resumed; write x.txt x")
	waitNote(t, c, 30*time.Second, "a stall report", func(n server.Note) bool {
		var p server.AgentChangedParams
		return n.Method == server.NotifyAgentChanged && json.Unmarshal(n.Params, &p) == nil && p.Agent.ID == a.ID &&
			p.Agent.State == agents.StateRunning && p.Agent.StalledSince != nil
	})
	writeFile(t, gate)
	a = wait(t, c, a.ID)
	if a.State != agents.StateSucceeded || a.StalledSince != nil {
		t.Fatalf("state %s stalled %v", a.State, a.StalledSince)
	}
	var lr server.LogResult
	if err := c.Call(context.Background(), server.MethodLog, server.LogParams{ID: a.ID}, &lr); err != nil {
		t.Fatal(err)
	}
	stalls := 0
	for _, ev := range lr.Events {
		if ev.Kind == "stall" {
			stalls++
		}
	}
	if stalls != 1 {
		t.Errorf("%d stall events, want 1", stalls)
	}
}

// A daemon restart in the middle of a run keeps what the run already
// reported: its question (so it still ends needs_input) and its usage.
func TestRestartKeepsWhatTheRunReported(t *testing.T) {
	home := t.TempDir()
	p := server.Paths{State: home, Run: filepath.Join(home, "run")}
	repo := vendorRepo(t, "")
	gate := filepath.Join(t.TempDir(), "gate")
	denied := compact(t, map[string]any{"type": "item.completed", "item": map[string]any{
		"id": "item_1", "type": "command_execution", "command": "touch/etc/x", "aggregated_output": "",
		"exit_code": 1, "status": "declined",
	}})
	turn1 := compact(t, map[string]any{"type": "turn.completed", "usage": map[string]any{"input_tokens": 1000, "cached_input_tokens": 0, "output_tokens": 50}})
	turn2 := compact(t, map[string]any{"type": "turn.completed", "usage": map[string]any{"input_tokens": 1500, "cached_input_tokens": 0, "output_tokens": 80}})
	task := strings.Join([]string{
		"json " + compact(t, map[string]any{"type": "thread.started", "thread_id": "th-1"}),
		"json " + denied, "json " + turn1, "waitfile " + gate, "json " + turn2,
	}, "; ")
	srv := server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: time.Second, Logger: testLogger()})
	srv.Start()
	cl, ss := pipe()
	srv.ServeConn(ss)
	c := server.NewClient(context.Background(), cl)
	a := spawnWith(t, c, server.SpawnParams{Agent: "codex", Repo: repo.Dir, Task: task})
	waitNote(t, c, 30*time.Second, "the first turn's usage", func(n server.Note) bool {
		var p server.AgentChangedParams
		return n.Method == server.NotifyAgentChanged && json.Unmarshal(n.Params, &p) == nil && p.Agent.ID == a.ID && p.Agent.Usage.InputTokens == 1000
	})
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	d := &inproc{srv: server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: time.Second, Logger: testLogger()}), paths: p}
	d.srv.Start()
	t.Cleanup(func() { stopAgents(t, d.client(t)); d.srv.Close() })
	c2 := d.client(t)
	if got := get(t, c2, a.ID); got.State != agents.StateRunning {
		t.Fatalf("after restart %s", got.State)
	}
	writeFile(t, gate)
	got := wait(t, c2, a.ID)
	if got.State != agents.StateNeedsInput || len(got.Questions) != 1 {
		t.Fatalf("state %s questions %+v: the question asked before the restart was lost", got.State, got.Questions)
	}
	if got.Usage.InputTokens != 1500 || got.Usage.OutputTokens != 80 {
		t.Fatalf("usage %+v, want the session's 1500/80 counted once", got.Usage)
	}
}
