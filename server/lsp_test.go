package server_test

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// lspClient is a minimal editor: it answers the server's requests
// (window/workDoneProgress/create) and records what it is told.
type lspClient struct {
	conn  jsonrpc2.Conn
	notes chan server.Note
}

func (d *inproc) lsp(t *testing.T) *lspClient {
	a, b := net.Pipe()
	d.srv.ServeConn(a)
	lc := &lspClient{conn: jsonrpc2.NewConn(server.NewStream(b, server.DefaultMaxMessage)), notes: make(chan server.Note, 1024)}
	lc.conn.Go(context.Background(), func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		if _, ok := req.(*jsonrpc2.Call); ok {
			lc.notes <- server.Note{Method: req.Method(), Params: req.Params()}
			return reply(ctx, nil, nil)
		}
		lc.notes <- server.Note{Method: req.Method(), Params: append(json.RawMessage(nil), req.Params()...)}
		return nil
	})
	t.Cleanup(func() { lc.conn.Close() })
	return lc
}

func (lc *lspClient) call(t *testing.T, method string, params, result any) error {
	t.Helper()
	_, err := lc.conn.Call(testenv.Context(t, 30*time.Second), method, params, result)
	return err
}

func (lc *lspClient) wait(t *testing.T, what string, match func(server.Note) bool) server.Note {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case n := <-lc.notes:
			if match(n) {
				return n
			}
		case <-deadline:
			t.Fatalf("no %s within 30s", what)
		}
	}
}

func TestLSPCodeActionSpawnsAgentWithSelection(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	file := filepath.Join(repo.Dir, "main.go")
	src := "package main\n\nfunc add(a, b int) int {\n\treturn a - b\n}\n"
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	// A plain LSP client: no bgagents notifications declared, but
	// work-done progress supported.
	lc := d.lsp(t)
	var init map[string]any
	if err := lc.call(t, "initialize", map[string]any{
		"processId": nil, "rootUri": "file://" + repo.Dir,
		"capabilities": map[string]any{"window": map[string]any{"workDoneProgress": true}},
	}, &init); err != nil {
		t.Fatal(err)
	}
	caps, _ := init["capabilities"].(map[string]any)
	if caps["codeActionProvider"] == nil || caps["executeCommandProvider"] == nil {
		t.Fatalf("capabilities: %v", caps)
	}
	if err := lc.conn.Notify(context.Background(), "initialized", map[string]any{}); err != nil {
		t.Fatal(err)
	}
	uri := "file://" + file
	// The editor's buffer differs from disk: the action takes the buffer.
	edited := strings.Replace(src, "a - b", "a - b // BUG", 1)
	if err := lc.conn.Notify(context.Background(), "textDocument/didOpen", map[string]any{
		"textDocument": map[string]any{"uri": uri, "languageId": "go", "version": 1, "text": edited},
	}); err != nil {
		t.Fatal(err)
	}
	// No selection, no diagnostics: nothing offered.
	var none []map[string]any
	if err := lc.call(t, "textDocument/codeAction", map[string]any{
		"textDocument": map[string]any{"uri": uri},
		"range":        map[string]any{"start": map[string]any{"line": 3, "character": 1}, "end": map[string]any{"line": 3, "character": 1}},
		"context":      map[string]any{"diagnostics": []any{}},
	}, &none); err != nil {
		t.Fatal(err)
	}
	if len(none) != 0 {
		t.Fatalf("actions for an empty selection: %v", none)
	}
	var actions []struct {
		Title   string `json:"title"`
		Command struct {
			Command   string            `json:"command"`
			Arguments []json.RawMessage `json:"arguments"`
		} `json:"command"`
	}
	if err := lc.call(t, "textDocument/codeAction", map[string]any{
		"textDocument": map[string]any{"uri": uri},
		"range":        map[string]any{"start": map[string]any{"line": 2, "character": 0}, "end": map[string]any{"line": 4, "character": 1}},
		"context": map[string]any{"diagnostics": []any{map[string]any{
			"range":   map[string]any{"start": map[string]any{"line": 3, "character": 1}, "end": map[string]any{"line": 3, "character": 13}},
			"message": "add subtracts", "source": "vet",
		}}},
	}, &actions); err != nil {
		t.Fatal(err)
	}
	if len(actions) != 2 || actions[0].Title != "Send to background agent" || !strings.Contains(actions[1].Title, "add subtracts") {
		t.Fatalf("actions: %+v", actions)
	}
	var args server.SendToAgentArgs
	if err := json.Unmarshal(actions[0].Command.Arguments[0], &args); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(args.Text, "a - b // BUG") || !strings.HasPrefix(args.Text, "func add") {
		t.Fatalf("selection text %q", args.Text)
	}
	// The editor adds the task the user typed; the test agent writes it.
	args.Task = "write fixed.txt from the code action"
	var res server.AgentResult
	if err := lc.call(t, "workspace/executeCommand", map[string]any{"command": actions[0].Command.Command, "arguments": []any{args}}, &res); err != nil {
		t.Fatal(err)
	}
	a := res.Agent
	if a.Context == nil || a.Context.File != "main.go" || a.Context.StartLine != 3 || a.Context.EndLine != 5 || !strings.Contains(a.Context.Text, "BUG") {
		t.Fatalf("agent context %+v", a.Context)
	}
	// Progress while the worktree is prepared, then a showMessage when the
	// agent finishes (this client did not declare bgagents notifications).
	lc.wait(t, "work-done progress", func(n server.Note) bool { return n.Method == "window/workDoneProgress/create" })
	lc.wait(t, "progress end", func(n server.Note) bool {
		return n.Method == "$/progress" && strings.Contains(string(n.Params), `"kind":"end"`)
	})
	msg := lc.wait(t, "a finish message", func(n server.Note) bool {
		return n.Method == "window/showMessage" && strings.Contains(string(n.Params), "finished")
	})
	if !strings.Contains(string(msg.Params), a.Name) {
		t.Errorf("finish message %s does not name the agent", msg.Params)
	}
	if err := lc.call(t, "shutdown", nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := lc.call(t, server.MethodHello, map[string]any{}, nil); err == nil {
		t.Error("requests after shutdown are accepted")
	}
	if err := lc.conn.Notify(context.Background(), "exit", nil); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lc.conn.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("exit did not close the session")
	}
	// The agent received the task with the selection as context.
	if got := testenv.Git(t, repo.Dir, "show", a.Branch+":fixed.txt"); !strings.HasPrefix(got, "from the code action Context: main.go lines 3-5") || !strings.Contains(got, "a - b // BUG") {
		t.Errorf("the agent's prompt lacked the context: %q", got)
	}
	if a := d.getAgent(t, a.ID); a.State != agents.StateSucceeded {
		t.Errorf("state %s", a.State)
	}
}

func (d *inproc) getAgent(t *testing.T, id string) *agents.Agent {
	return get(t, d.client(t), id)
}

// A preparation's progress says what a queued pipeline step waits for, is
// cancellable (cancelling it cancels the agent), and ends when the agent
// leaves the queue any other way than by starting.
func TestLSPProgressOfQueuedStepCancels(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	lc := d.lsp(t)
	if err := lc.call(t, "initialize", map[string]any{
		"processId": nil, "rootUri": "file://" + repo.Dir,
		"capabilities": map[string]any{"window": map[string]any{"workDoneProgress": true}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	gate := filepath.Join(t.TempDir(), "gate")
	var first, step server.AgentResult
	if err := lc.call(t, server.MethodSpawn, server.SpawnParams{Repo: repo.Dir, Task: "waitfile " + gate + "; write a.txt a", Name: "first"}, &first); err != nil {
		t.Fatal(err)
	}
	if err := lc.call(t, server.MethodSpawn, server.SpawnParams{Repo: repo.Dir, Task: "write b.txt b", After: "first", Name: "step"}, &step); err != nil {
		t.Fatal(err)
	}
	token := "bgagents-" + step.Agent.ID
	begin := lc.wait(t, "the step's progress", func(n server.Note) bool {
		return n.Method == "$/progress" && strings.Contains(string(n.Params), token) && strings.Contains(string(n.Params), `"begin"`)
	})
	if !strings.Contains(string(begin.Params), `"cancellable":true`) {
		t.Errorf("progress is not cancellable: %s", begin.Params)
	}
	lc.wait(t, "what the step waits for", func(n server.Note) bool {
		return n.Method == "$/progress" && strings.Contains(string(n.Params), token) && strings.Contains(string(n.Params), "waiting for first to succeed")
	})
	if err := lc.conn.Notify(context.Background(), "window/workDoneProgress/cancel", map[string]any{"token": token}); err != nil {
		t.Fatal(err)
	}
	end := lc.wait(t, "the step's progress end", func(n server.Note) bool {
		return n.Method == "$/progress" && strings.Contains(string(n.Params), token) && strings.Contains(string(n.Params), `"end"`)
	})
	if !strings.Contains(string(end.Params), "cancelled") {
		t.Errorf("progress end: %s", end.Params)
	}
	if got := d.getAgent(t, step.Agent.ID); got.State != agents.StateCancelled {
		t.Errorf("step is %s after its progress was cancelled", got.State)
	}
	if err := lc.call(t, server.MethodCancel, server.IDParams{ID: first.Agent.ID}, nil); err != nil {
		t.Fatal(err)
	}
}
