// Package fakemodel is a fake model API server for tests: it lets the real
// agent CLIs (Claude Code, Codex, Gemini CLI, OpenCode) run offline against
// 127.0.0.1 with scripted replies, so a test can run a real CLI in a real
// worktree and check what it really did.
//
// One server speaks three wire formats:
//
//   - Anthropic Messages: POST /v1/messages (streamed as SSE, or JSON when the
//     request asks for no stream). Claude Code and OpenCode (through its
//     @ai-sdk/anthropic provider) use it.
//   - OpenAI Responses: POST /v1/responses, streamed as SSE. Codex uses it
//     through a custom model provider.
//   - Gemini: POST /v1beta/models/MODEL:streamGenerateContent?alt=sse for the
//     conversation and :generateContent for the CLI's side questions (model
//     routing, next speaker), which get a JSON answer.
//
// A script is a list of turns. Each request of the agent's conversation (a
// request that offers tools, or any Gemini streamGenerateContent) takes the
// next turn: a tool call (ToolCall), or a final text. Other requests (a
// title, a routing question) get a short default answer and take no turn.
// When the script is used up the server answers an error, so a test that
// forgot a turn fails loudly.
//
// Tool inputs may contain the placeholder Cwd ("{cwd}"), replaced by the
// working directory the CLI states in its request (the system prompt or
// environment context), so a script can name an absolute path in the
// agent's worktree without knowing it in advance.
//
// Every request is recorded (Requests), so a test can check, for instance,
// that a resumed session sent the earlier conversation back.
package fakemodel

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
)

// Cwd is the placeholder for the agent's working directory in tool inputs.
const Cwd = "{cwd}"

// Usage is the token usage the server reports for one turn.
type Usage struct {
	InputTokens  int64
	OutputTokens int64
}

// DefaultUsage is the usage of a turn that sets none.
var DefaultUsage = Usage{InputTokens: 100, OutputTokens: 20}

// ToolCall is a tool the model calls. For function tools Input holds the
// arguments (a JSON object); for a free-form tool of the Responses API
// (Codex's apply_patch) Custom holds the raw input instead. String values
// may contain Cwd.
type ToolCall struct {
	Name   string
	Input  map[string]any
	Custom string
}

// Turn is one scripted reply of the model.
type Turn struct {
	// Text is what the model says. Without a Tool it is the final answer
	// (the stop reason is end_turn); with one it comes before the call.
	Text string
	// Tool is the tool the model calls this turn.
	Tool *ToolCall
	// Usage is reported with the turn; zero means DefaultUsage.
	Usage Usage
	// Status, when set, makes the server answer with this HTTP status and
	// an API error carrying ErrorMessage instead of a reply.
	Status       int
	ErrorMessage string
}

// Say is a turn that answers text and ends the conversation.
func Say(text string) Turn { return Turn{Text: text} }

// Call is a turn that calls a tool.
func Call(c ToolCall) Turn { return Turn{Tool: &c} }

// Fail is a turn answered with an HTTP error.
func Fail(status int, message string) Turn { return Turn{Status: status, ErrorMessage: message} }

// WithUsage returns the turn with its usage set.
func (t Turn) WithUsage(input, output int64) Turn {
	t.Usage = Usage{InputTokens: input, OutputTokens: output}
	return t
}

func (t Turn) usage() Usage {
	if t.Usage == (Usage{}) {
		return DefaultUsage
	}
	return t.Usage
}

// ClaudeWrite is Claude Code's Write tool creating path (relative to the
// working directory) with content.
func ClaudeWrite(path, content string) ToolCall {
	return ToolCall{Name: "Write", Input: map[string]any{"file_path": Cwd + "/" + path, "content": content}}
}

// OpenCodeWrite is OpenCode's write tool creating path (relative to the
// working directory) with content.
func OpenCodeWrite(path, content string) ToolCall {
	return ToolCall{Name: "write", Input: map[string]any{"filePath": Cwd + "/" + path, "content": content}}
}

// GeminiWriteFile is Gemini CLI's write_file tool creating path (relative
// to the working directory) with content.
func GeminiWriteFile(path, content string) ToolCall {
	return ToolCall{Name: "write_file", Input: map[string]any{"file_path": Cwd + "/" + path, "content": content}}
}

// CodexExec is Codex's exec_command tool running a shell command in the
// working directory.
func CodexExec(cmd string) ToolCall {
	return ToolCall{Name: "exec_command", Input: map[string]any{"cmd": cmd, "workdir": Cwd}}
}

// CodexApplyPatch is Codex's free-form apply_patch tool adding the file
// path (relative) with content. Codex offers it only for models it knows
// (e.g. gpt-5.5), not for an unknown fake model name.
func CodexApplyPatch(path, content string) ToolCall {
	var b strings.Builder
	b.WriteString("*** Begin Patch\n*** Add File: " + path + "\n")
	for _, l := range strings.SplitAfter(strings.TrimSuffix(content, "\n"), "\n") {
		b.WriteString("+" + strings.TrimSuffix(l, "\n") + "\n")
	}
	b.WriteString("*** End Patch\n")
	return ToolCall{Name: "apply_patch", Custom: b.String()}
}

// Request is one request the server received.
type Request struct {
	Method string
	// Path includes the query.
	Path   string
	Header http.Header
	Body   []byte
	// API is "anthropic", "responses", "gemini" or "" for paths the
	// server does not know (answered 404).
	API string
	// Turn is the index of the script turn the request got, -1 for a
	// request that took none.
	Turn int
	// Cwd is the working directory found in the request, if any.
	Cwd string
	// ToolID is the id the server gave the tool call of its answer (a
	// tool_use id, a call_id); a later request that carries the
	// conversation on contains it.
	ToolID string
	// Usage is the usage reported in the answer (zero for an error).
	Usage Usage
}

// Server is a running fake model server. Its methods are safe for
// concurrent use.
type Server struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []Turn
	next     int
	requests []Request
	errs     []string
	ids      int
}

// Start starts a server on 127.0.0.1 with the given script. Close it when
// done.
func Start(script ...Turn) *Server {
	s := &Server{script: append([]Turn(nil), script...)}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the server's base URL, http://127.0.0.1:PORT (no trailing slash).
func (s *Server) URL() string { return s.srv.URL }

// Close stops the server: it cuts open connections and waits for the
// handlers to return.
func (s *Server) Close() {
	s.srv.CloseClientConnections()
	s.srv.Close()
}

// Remaining is the number of scripted turns not yet taken.
func (s *Server) Remaining() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.script) - s.next
}

// Requests returns every request received so far, in order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// TurnRequests returns the requests that took a script turn, in order.
func (s *Server) TurnRequests() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Turn >= 0 {
			out = append(out, r)
		}
	}
	return out
}

// Errors lists what went wrong on the server's side: requests it could
// not parse, requests after the script ended, unknown paths.
func (s *Server) Errors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}

// Describe summarises the requests received, for a test's failure message.
func (s *Server) Describe() string {
	var b strings.Builder
	for i, r := range s.Requests() {
		fmt.Fprintf(&b, "  #%d %s %s api=%s turn=%d cwd=%q body=%d bytes\n", i, r.Method, r.Path, r.API, r.Turn, r.Cwd, len(r.Body))
	}
	for _, e := range s.Errors() {
		fmt.Fprintf(&b, "  error: %s\n", e)
	}
	if b.Len() == 0 {
		return "  (no requests)\n"
	}
	return b.String()
}

func (s *Server) errorf(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

// newID returns a fresh id with prefix, unique within the server.
func (s *Server) newID(prefix string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids++
	return fmt.Sprintf("%s_fake_%d", prefix, s.ids)
}

// take records a request and, when it is part of the conversation, hands
// out the next turn (ok false when the script is used up). req is the
// request's index in s.requests.
func (s *Server) take(r *http.Request, body []byte, api string, conversation bool) (turn Turn, req int, cwd string, ok bool) {
	cwd = findCwd(body)
	s.mu.Lock()
	defer s.mu.Unlock()
	ok = true
	idx := -1
	if conversation {
		if s.next < len(s.script) {
			idx = s.next
			turn = s.script[idx]
			s.next++
		} else {
			ok = false
			s.errs = append(s.errs, fmt.Sprintf("%s %s: no scripted turn left (script has %d)", r.Method, r.URL.RequestURI(), len(s.script)))
		}
	}
	s.requests = append(s.requests, Request{
		Method: r.Method, Path: r.URL.RequestURI(), Header: r.Header.Clone(), Body: body,
		API: api, Turn: idx, Cwd: cwd,
	})
	return turn, len(s.requests) - 1, cwd, ok
}

// answered records the usage reported to request req.
func (s *Server) answered(req int, u Usage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[req].Usage = u
}

// toolID returns a fresh tool call id with prefix and records it as the
// answer's to request req.
func (s *Server) toolID(req int, prefix string) string {
	id := s.newID(prefix)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[req].ToolID = id
	return id
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		s.errorf("%s %s: read body: %v", r.Method, r.URL.RequestURI(), err)
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	path := r.URL.Path
	switch {
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/messages"):
		s.anthropic(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(path, "/responses"):
		s.responses(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(path, ":streamGenerateContent"):
		s.geminiStream(w, r, body)
	case r.Method == http.MethodPost && strings.HasSuffix(path, ":generateContent"):
		s.geminiGenerate(w, r, body)
	case (r.Method == http.MethodHead || r.Method == http.MethodGet) && path == "/":
		// Claude Code checks that the server answers.
		s.take(r, body, "", false)
	default:
		s.take(r, body, "", false)
		s.errorf("%s %s: unknown endpoint", r.Method, r.URL.RequestURI())
		http.NotFound(w, r)
	}
}

// cwdPatterns find the working directory in what each CLI sends.
var cwdPatterns = []*regexp.Regexp{
	regexp.MustCompile(`Primary working directory: (/[^\s]*)`),            // Claude Code
	regexp.MustCompile(`<cwd>(/[^<]*)</cwd>`),                             // Codex
	regexp.MustCompile(`Working directory: (/[^\s<]*)`),                   // OpenCode
	regexp.MustCompile(`Workspace Directories:\*\*\s*\n\s*-\s*(/[^\s]*)`), // Gemini CLI
}

// findCwd returns the first working directory a pattern finds in any
// string of the JSON body.
func findCwd(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	var texts []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case string:
			texts = append(texts, x)
		case []any:
			for _, e := range x {
				walk(e)
			}
		case map[string]any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	for _, p := range cwdPatterns {
		for _, t := range texts {
			if m := p.FindStringSubmatch(t); m != nil {
				return strings.TrimRight(m[1], "/")
			}
		}
	}
	return ""
}

// expand replaces Cwd in every string of v. Without a known cwd the
// placeholder and the slash after it are dropped: paths become relative.
func expand(v any, cwd string) any {
	switch x := v.(type) {
	case string:
		if cwd == "" {
			x = strings.ReplaceAll(x, Cwd+"/", "")
			return strings.ReplaceAll(x, Cwd, ".")
		}
		return strings.ReplaceAll(x, Cwd, cwd)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = expand(e, cwd)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = expand(e, cwd)
		}
		return out
	}
	return v
}

// input is the tool call's arguments with Cwd replaced.
func (c *ToolCall) input(cwd string) map[string]any {
	if c.Input == nil {
		return map[string]any{}
	}
	return expand(c.Input, cwd).(map[string]any)
}

// hasTools reports whether a JSON request body offers the model tools.
func hasTools(body []byte) bool {
	var req struct {
		Tools []json.RawMessage `json:"tools"`
	}
	return json.Unmarshal(body, &req) == nil && len(req.Tools) > 0
}

// sse writes server-sent events, flushing each.
type sse struct {
	w http.ResponseWriter
	f http.Flusher
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	f, _ := w.(http.Flusher)
	return &sse{w: w, f: f}
}

// event writes one event; name may be empty (data only).
func (e *sse) event(name string, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		panic(err) // the server builds every payload itself
	}
	if name != "" {
		fmt.Fprintf(e.w, "event: %s\n", name)
	}
	fmt.Fprintf(e.w, "data: %s\n\n", b)
	if e.f != nil {
		e.f.Flush()
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// halves splits s in two at a character boundary, to send a value in more
// than one delta.
func halves(s string) []string {
	r := []rune(s)
	if len(r) < 2 {
		return []string{s}
	}
	return []string{string(r[:len(r)/2]), string(r[len(r)/2:])}
}
