package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// rawConn speaks raw frames to a session, so the test can send what no
// well-behaved client would.
type rawConn struct {
	c net.Conn
	r *bufio.Reader
}

func (d *inproc) raw(t *testing.T) *rawConn {
	a, b := net.Pipe()
	d.srv.ServeConn(a)
	t.Cleanup(func() { b.Close() })
	return &rawConn{c: b, r: bufio.NewReader(b)}
}

func (rc *rawConn) send(t *testing.T, body string) {
	t.Helper()
	rc.sendFrame(t, fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body))
}

func (rc *rawConn) sendFrame(t *testing.T, frame string) {
	t.Helper()
	_ = rc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(rc.c, frame); err != nil {
		t.Fatalf("write: %v", err)
	}
}

type rawResp struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Code    int64  `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// recv reads frames until a response (not a notification) arrives.
func (rc *rawConn) recv(t *testing.T) rawResp {
	t.Helper()
	_ = rc.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	for {
		length := -1
		for {
			line, err := rc.r.ReadString('\n')
			if err != nil {
				t.Fatalf("read header: %v", err)
			}
			line = strings.TrimSpace(line)
			if line == "" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		body := make([]byte, length)
		if _, err := io.ReadFull(rc.r, body); err != nil {
			t.Fatalf("read body: %v", err)
		}
		var r rawResp
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatalf("bad response %s: %v", body, err)
		}
		if r.Method == "" {
			return r
		}
	}
}

// Every kind of bad input gets an error with a real code and a message a
// person can act on; the session keeps serving, other sessions and a
// running agent are not affected.
func TestBadInputsAnsweredAndDaemonKeepsServing(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	bystander := d.client(t)
	gate := t.TempDir() + "/gate"
	running := spawn(t, bystander, repo.Dir, "say running; waitfile "+gate+"; write survived.txt yes")
	outside := t.TempDir()
	huge := strings.Repeat("x", 2<<20)

	cases := []struct {
		name    string
		frame   string // raw frame (with headers); empty means body below
		body    string
		code    int64
		message string // substring of the error message
	}{
		{name: "malformed json", body: `{"jsonrpc":"2.0","id":1,"method":`, code: int64(jsonrpc2.ParseError)},
		{name: "batch", body: `[{"jsonrpc":"2.0","id":1,"method":"bgagents/hello"}]`, code: int64(jsonrpc2.InvalidRequest), message: "batch"},
		{name: "id out of range", body: `{"jsonrpc":"2.0","id":99999999999,"method":"bgagents/hello"}`, code: int64(jsonrpc2.InvalidRequest)},
		{name: "wrong version", body: `{"jsonrpc":"1.0","id":1,"method":"bgagents/hello"}`, code: int64(jsonrpc2.InvalidRequest)},
		{name: "unknown method", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/explode"}`, code: int64(jsonrpc2.MethodNotFound), message: "bgagents/explode"},
		{name: "unknown lsp method", body: `{"jsonrpc":"2.0","id":1,"method":"textDocument/hover","params":{}}`, code: int64(jsonrpc2.MethodNotFound)},
		{name: "params wrong type", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":42,"repo":"/x"}}`, code: int64(jsonrpc2.InvalidParams), message: `"task"`},
		{name: "unknown field", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/discard","params":{"id":"x","forse":true}}`, code: int64(jsonrpc2.InvalidParams), message: `forse`},
		{name: "params not an object", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/list","params":"all"}`, code: int64(jsonrpc2.InvalidRequest)},
		{name: "missing id field", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/get","params":{}}`, code: int64(jsonrpc2.InvalidParams), message: `"id"`},
		{name: "empty task", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"  ","repo":%q}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams), message: "task"},
		{name: "relative repo", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":"../etc"}}`, code: int64(jsonrpc2.InvalidParams), message: "absolute"},
		{name: "repo not a git repository", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q}}`, outside), code: int64(server.CodeNotARepository), message: "not inside a git repository"},
		{name: "bad name", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q,"name":"--upload-pack=evil"}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams), message: "name"},
		{name: "name with dots", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q,"name":"../../etc"}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams), message: "name"},
		{name: "base option injection", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q,"base":"--output=/tmp/x"}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams), message: "base"},
		{name: "unknown base", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q,"base":"no-such-branch"}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams), message: "no-such-branch"},
		{name: "unknown agent", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q,"agent":"nope"}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams), message: "[agents.nope]"},
		{name: "negative timeout", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"x","repo":%q,"timeout":"-5s"}}`, repo.Dir), code: int64(jsonrpc2.InvalidParams)},
		{name: "unknown agent id", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/get","params":{"id":"doesnotexist"}}`, code: int64(server.CodeAgentNotFound), message: "doesnotexist"},
		{name: "bad merge strategy", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/merge","params":{"id":%q,"strategy":"octopus"}}`, running.ID), code: int64(jsonrpc2.InvalidParams), message: "squash"},
		{name: "merge while running", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/merge","params":{"id":%q}}`, running.ID), code: int64(server.CodeInvalidState), message: "cancel"},
		{name: "discard while running", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"bgagents/discard","params":{"id":%q}}`, running.ID), code: int64(server.CodeRefused), message: "--force"},
		{name: "unknown state filter", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/list","params":{"states":["sleeping"]}}`, code: int64(jsonrpc2.InvalidParams), message: "sleeping"},
		{name: "code action outside a repo", body: fmt.Sprintf(`{"jsonrpc":"2.0","id":1,"method":"workspace/executeCommand","params":{"command":"bgagents.sendToAgent","arguments":[{"uri":"file://%s/x.go"}]}}`, outside), code: int64(server.CodeNotARepository)},
		{name: "code action on a device", body: `{"jsonrpc":"2.0","id":1,"method":"textDocument/codeAction","params":{"textDocument":{"uri":"file:///dev/zero"},"range":{"start":{"line":0,"character":0},"end":{"line":1,"character":0}},"context":{"diagnostics":[]}}}`, code: int64(jsonrpc2.InvalidParams), message: "not a regular file"},
		{name: "unknown command", body: `{"jsonrpc":"2.0","id":1,"method":"workspace/executeCommand","params":{"command":"rm -rf"}}`, code: int64(jsonrpc2.InvalidParams), message: "bgagents.sendToAgent"},
		{name: "huge message", body: `{"jsonrpc":"2.0","id":1,"method":"bgagents/spawn","params":{"task":"` + huge + `"}}`, code: int64(jsonrpc2.InvalidRequest), message: "limit"},
		{name: "lowercase header is fine", frame: "content-length: 54\r\n\r\n" + `{"jsonrpc":"2.0","id":1,"method":"bgagents/explode"}  `, code: int64(jsonrpc2.MethodNotFound)},
	}
	rc := d.raw(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.frame != "" {
				rc.sendFrame(t, tc.frame)
			} else {
				rc.send(t, tc.body)
			}
			r := rc.recv(t)
			if r.Error == nil {
				t.Fatalf("no error; result %s", r.Result)
			}
			if r.Error.Code != tc.code {
				t.Errorf("code %d, want %d (%s)", r.Error.Code, tc.code, r.Error.Message)
			}
			if !strings.Contains(r.Error.Message, tc.message) {
				t.Errorf("message %q does not mention %q", r.Error.Message, tc.message)
			}
			// The same session still answers.
			rc.send(t, `{"jsonrpc":"2.0","id":"after","method":"bgagents/hello","params":{}}`)
			if ok := rc.recv(t); ok.Error != nil || string(ok.ID) != `"after"` {
				t.Fatalf("session broken after bad input: %+v", ok)
			}
		})
	}
	// Garbage framing ends only that connection.
	g := d.raw(t)
	g.sendFrame(t, "this is not a header\r\n\r\n")
	if r := g.recv(t); r.Error == nil || r.Error.Code != int64(jsonrpc2.ParseError) {
		t.Errorf("garbage header: %+v", r)
	}
	// Everyone else is unaffected, and the running agent finishes normally.
	if err := bystander.Call(context.Background(), server.MethodHello, server.HelloParams{}, nil); err != nil {
		t.Fatalf("other session broken: %v", err)
	}
	writeFile(t, gate)
	if a := wait(t, bystander, running.ID); a.State != agents.StateSucceeded || a.Diff.Files != 1 {
		t.Fatalf("running agent disturbed: %s %q", a.State, a.Error)
	}
}

func TestUnknownAndAmbiguousIDs(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write a.txt a").ID)
	for _, ref := range []string{a.ID, a.ID[:4], a.Name} {
		if got := get(t, c, ref); got.ID != a.ID {
			t.Errorf("ref %q resolved to %s", ref, got.ID)
		}
	}
	err := c.Call(context.Background(), server.MethodGet, server.IDParams{ID: ""}, nil)
	if rpcCode(err) != jsonrpc2.InvalidParams {
		t.Errorf("empty id: %v", err)
	}
	// Enough agents that some share a first hex digit.
	var ids []string
	for i := 0; i < 17; i++ {
		ids = append(ids, wait(t, c, spawn(t, c, repo.Dir, "say nothing").ID).ID)
	}
	ids = append(ids, a.ID)
	seen := map[byte]bool{}
	var shared byte
	for _, id := range ids {
		if seen[id[0]] {
			shared = id[0]
			break
		}
		seen[id[0]] = true
	}
	err = c.Call(context.Background(), server.MethodGet, server.IDParams{ID: string(shared)}, nil)
	if rpcCode(err) != server.CodeAmbiguousAgent {
		t.Errorf("ambiguous prefix %q: %v", string(shared), err)
	}
}
