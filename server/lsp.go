package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.lsp.dev/jsonrpc2"
	"go.lsp.dev/protocol"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/worktree"
)

// initialize records what the client supports and answers with the
// daemon's capabilities.
func (s *Session) initialize(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		protocol.InitializeParams
		// RootURI shadows the deprecated field of the embedded params: old
		// clients still send only this.
		RootURI      string `json:"rootUri"`
		Capabilities struct {
			Window *struct {
				WorkDoneProgress bool `json:"workDoneProgress"`
			} `json:"window"`
			Experimental *struct {
				BgAgents *ExperimentalCapabilities `json:"bgagents"`
			} `json:"experimental"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(nonNull(params), &p); err != nil {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: initialize: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.life != lifeNew {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "initialize was already called on this session (it is %s)", s.life)
	}
	s.life = lifeInitialized
	s.isLSP = true
	if w := p.Capabilities.Window; w != nil {
		s.progress = w.WorkDoneProgress
	}
	if e := p.Capabilities.Experimental; e != nil && e.BgAgents != nil {
		s.notifies = e.BgAgents.Notifications
	}
	if len(p.WorkspaceFolders) > 0 {
		s.rootPath = uriPath(p.WorkspaceFolders[0].URI)
	} else if p.RootURI != "" {
		s.rootPath = uriPath(p.RootURI)
	}
	return map[string]any{
		"capabilities": map[string]any{
			"textDocumentSync": map[string]any{"openClose": true, "change": 1},
			"codeActionProvider": map[string]any{
				"codeActionKinds": []string{"refactor.bgagents"},
			},
			"executeCommandProvider": map[string]any{"commands": []string{CommandSendToAgent}},
			"experimental": map[string]any{"bgagents": map[string]any{
				"version": Version, "methods": customMethods(),
			}},
		},
		"serverInfo": map[string]any{"name": "bgagents", "version": Version},
	}, nil
}

func customMethods() []string {
	var out []string
	for m := range routes {
		if strings.HasPrefix(m, "bgagents/") {
			out = append(out, m)
		}
	}
	return out
}

func nonNull(b json.RawMessage) json.RawMessage {
	if len(b) == 0 || string(b) == "null" {
		return json.RawMessage("{}")
	}
	return b
}

func (s *Session) shutdown(ctx context.Context, params json.RawMessage) (any, error) {
	s.mu.Lock()
	s.life = lifeShutdown
	s.mu.Unlock()
	return nil, nil
}

// uriPath turns a file:// URI into a path ("" for other schemes).
func uriPath(uri string) string {
	u, err := url.Parse(uri)
	if err != nil || u.Scheme != "file" {
		return ""
	}
	return filepath.Clean(u.Path)
}

func (s *Session) syncDocument(method string, params json.RawMessage) {
	var p struct {
		TextDocument struct {
			URI  string `json:"uri"`
			Text string `json:"text"`
		} `json:"textDocument"`
		ContentChanges []struct {
			Range *json.RawMessage `json:"range"`
			Text  string           `json:"text"`
		} `json:"contentChanges"`
	}
	if json.Unmarshal(params, &p) != nil || p.TextDocument.URI == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "textDocument/didOpen":
		s.docs[p.TextDocument.URI] = p.TextDocument.Text
	case "textDocument/didChange":
		// Full sync (change = 1): the last change is the whole text.
		for _, c := range p.ContentChanges {
			if c.Range == nil {
				s.docs[p.TextDocument.URI] = c.Text
			}
		}
	case "textDocument/didClose":
		delete(s.docs, p.TextDocument.URI)
	}
}

// documentText returns the editor's text of uri, or the file on disk.
func (s *Session) documentText(uri string) (string, error) {
	s.mu.Lock()
	text, ok := s.docs[uri]
	s.mu.Unlock()
	if ok {
		return text, nil
	}
	path := uriPath(uri)
	if path == "" {
		return "", fmt.Errorf("%s is not a file:// URI", uri)
	}
	// Only regular files, and not huge ones: a device or a FIFO would
	// exhaust memory or block the handler.
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxDocument {
		return "", fmt.Errorf("%s is larger than %d bytes; open it in the editor so its text is sent", path, maxDocument)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDocument+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	return string(data), nil
}

// maxDocument caps a document read from disk for a code action.
const maxDocument = 8 << 20

// sliceRange returns the text between two LSP positions (lines and UTF-16
// columns).
func sliceRange(text string, r LSPRange) string {
	lines := strings.SplitAfter(text, "\n")
	off := func(p LSPPos) int {
		n := 0
		for i := 0; i < int(p.Line) && i < len(lines); i++ {
			n += len(lines[i])
		}
		if int(p.Line) >= len(lines) {
			return len(text)
		}
		line := lines[p.Line]
		units := 0
		for i, r := range line {
			if units >= int(p.Character) {
				return n + i
			}
			if r >= 0x10000 {
				units += 2
			} else {
				units++
			}
		}
		return n + len(strings.TrimRight(line, "\r\n"))
	}
	a, b := off(r.Start), off(r.End)
	if a > b {
		a, b = b, a
	}
	return text[a:b]
}

// codeAction offers "Send to background agent" for a non-empty selection
// or for the diagnostics under the cursor.
func (s *Session) codeAction(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		TextDocument struct {
			URI string `json:"uri"`
		} `json:"textDocument"`
		Range   LSPRange `json:"range"`
		Context struct {
			Diagnostics []struct {
				Range   LSPRange `json:"range"`
				Message string   `json:"message"`
				Source  string   `json:"source"`
			} `json:"diagnostics"`
			Only []string `json:"only"`
		} `json:"context"`
	}
	if err := json.Unmarshal(nonNull(params), &p); err != nil {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: codeAction: %v", err)
	}
	if p.TextDocument.URI == "" {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"textDocument.uri\" is required")
	}
	if len(p.Context.Only) > 0 {
		ok := false
		for _, k := range p.Context.Only {
			if k == "refactor" || k == "refactor.bgagents" || k == "" {
				ok = true
			}
		}
		if !ok {
			return []any{}, nil
		}
	}
	actions := []any{}
	empty := p.Range.Start == p.Range.End
	text, docErr := "", error(nil)
	if !empty || len(p.Context.Diagnostics) > 0 {
		text, docErr = s.documentText(p.TextDocument.URI)
		if docErr != nil {
			return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: textDocument.uri: %v", docErr)
		}
	}
	if !empty {
		args := SendToAgentArgs{URI: p.TextDocument.URI, Range: &p.Range, Text: sliceRange(text, p.Range)}
		actions = append(actions, codeActionFor("Send to background agent", args))
	}
	for _, d := range p.Context.Diagnostics {
		r := d.Range
		msg := d.Message
		if d.Source != "" {
			msg = d.Source + ": " + msg
		}
		args := SendToAgentArgs{URI: p.TextDocument.URI, Range: &r, Text: sliceRange(text, r), Diagnostic: msg}
		actions = append(actions, codeActionFor("Send to background agent: fix “"+truncate(d.Message, 50)+"”", args))
	}
	return actions, nil
}

func truncate(s string, n int) string {
	s = strings.TrimSpace(strings.SplitN(s, "\n", 2)[0])
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}

func codeActionFor(title string, args SendToAgentArgs) map[string]any {
	return map[string]any{
		"title": title,
		"kind":  "refactor.bgagents",
		"command": map[string]any{
			"title":     title,
			"command":   CommandSendToAgent,
			"arguments": []any{args},
		},
	}
}

// executeCommand runs bgagents.sendToAgent: it spawns an agent on the
// repository containing the file, with the range and text as context.
func (s *Session) executeCommand(ctx context.Context, params json.RawMessage) (any, error) {
	var p struct {
		Command   string            `json:"command"`
		Arguments []json.RawMessage `json:"arguments"`
	}
	if err := json.Unmarshal(nonNull(params), &p); err != nil {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: executeCommand: %v", err)
	}
	if p.Command != CommandSendToAgent {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "unknown command %q; bgagents runs %s", p.Command, CommandSendToAgent)
	}
	if len(p.Arguments) != 1 {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %s takes one argument {uri, range, text, diagnostic, task?}", CommandSendToAgent)
	}
	var args SendToAgentArgs
	if err := decode(p.Arguments[0], &args); err != nil {
		return nil, err
	}
	path := uriPath(args.URI)
	if path == "" {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"uri\" must be a file:// URI, not %q", args.URI)
	}
	repo, err := repoRoot(ctx, filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	// The file may be in a linked worktree (a window opened on an agent's
	// worktree): the path is relative to that checkout, and the new agent
	// starts from the branch checked out there unless told otherwise.
	top, err := worktree.Git(ctx, filepath.Dir(path), "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, agents.Errorf(agents.ErrNotRepo, "%s is not inside a git checkout: %w", path, err)
	}
	rel, err := filepath.Rel(top, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %s is outside the checkout %s", path, top)
	}
	if args.Base == "" && filepath.Clean(top) != repo {
		if b, err := worktree.CurrentBranch(ctx, top); err == nil {
			args.Base = b
		}
	}
	c := &agents.Context{File: rel, Text: args.Text, Diagnostic: args.Diagnostic}
	if args.Range != nil {
		c.StartLine, c.EndLine = int(args.Range.Start.Line)+1, int(args.Range.End.Line)+1
	}
	task := strings.TrimSpace(args.Task)
	if task == "" {
		task = defaultTask(c)
	}
	a, err := s.spawnAgent(ctx, SpawnParams{Task: task, Repo: repo, Name: args.Name, Agent: args.Agent, Model: args.Model, Base: args.Base, Context: c})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	plain := !s.notifies
	s.mu.Unlock()
	if plain {
		_ = s.conn.Notify(s.ctx, "window/showMessage", map[string]any{"type": 3, "message": fmt.Sprintf("bgagents: %s started on branch %s", a.Name, a.Branch)})
	}
	return AgentResult{Agent: a}, nil
}

// defaultTask is the task when the editor sent none.
func defaultTask(c *agents.Context) string {
	if c.Diagnostic != "" {
		return fmt.Sprintf("Fix this problem in %s (line %d): %s", c.File, c.StartLine, c.Diagnostic)
	}
	return fmt.Sprintf("Improve the selected code in %s (lines %d-%d): make it correct, clear and tested", c.File, c.StartLine, c.EndLine)
}
