package fakemodel

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

type sseEvent struct {
	name string
	data map[string]any
}

// post sends body to s and returns the status and the SSE events (or, for
// a JSON answer, one event named "json").
func post(t *testing.T, s *Server, path string, body any) (int, []sseEvent) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post(s.URL()+path, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		var m map[string]any
		data, _ := io.ReadAll(resp.Body)
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatalf("answer is not JSON: %s", data)
		}
		return resp.StatusCode, []sseEvent{{name: "json", data: m}}
	}
	var evs []sseEvent
	var name string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			var m map[string]any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &m); err != nil {
				t.Fatalf("bad data line %q: %v", line, err)
			}
			evs = append(evs, sseEvent{name: name, data: m})
			name = ""
		}
	}
	return resp.StatusCode, evs
}

// get follows keys (strings for objects, ints for arrays) into v.
func get(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, _ := v.(map[string]any)
			v = m[k]
		case int:
			a, _ := v.([]any)
			if k >= len(a) {
				return nil
			}
			v = a[k]
		}
	}
	return v
}

var anyTool = []any{map[string]any{"name": "Write"}}

func TestAnthropicStreamsToolCallThenText(t *testing.T) {
	s := Start(Call(ClaudeWrite("hello.txt", "hi\n")).WithUsage(7, 3), Say("done"))
	defer s.Close()
	req := map[string]any{
		"model": "claude-test", "stream": true, "tools": anyTool,
		"system":   []any{map[string]any{"type": "text", "text": "env:\n - Primary working directory: /work/tree\n"}},
		"messages": []any{map[string]any{"role": "user", "content": "create hello.txt"}},
	}
	status, evs := post(t, s, "/v1/messages?beta=true", req)
	if status != 200 {
		t.Fatalf("status %d", status)
	}
	var names []string
	var partial string
	for _, e := range evs {
		names = append(names, e.name)
		if e.name != e.data["type"] {
			t.Errorf("event %q carries type %v", e.name, e.data["type"])
		}
		if d, ok := get(e.data, "delta", "partial_json").(string); ok {
			partial += d
		}
	}
	want := "message_start content_block_start content_block_delta content_block_delta content_block_stop message_delta message_stop"
	if strings.Join(names, " ") != want {
		t.Errorf("events %v, want %s", names, want)
	}
	if get(evs[0].data, "message", "model") != "claude-test" || get(evs[0].data, "message", "usage", "input_tokens") != 7.0 {
		t.Errorf("message_start %v", evs[0].data)
	}
	block := get(evs[1].data, "content_block")
	if get(block, "type") != "tool_use" || get(block, "name") != "Write" {
		t.Errorf("content_block_start %v", block)
	}
	var input map[string]string
	if err := json.Unmarshal([]byte(partial), &input); err != nil || input["file_path"] != "/work/tree/hello.txt" || input["content"] != "hi\n" {
		t.Errorf("tool input %q (%v)", partial, err)
	}
	if get(evs[5].data, "delta", "stop_reason") != "tool_use" || get(evs[5].data, "usage", "output_tokens") != 3.0 {
		t.Errorf("message_delta %v", evs[5].data)
	}

	_, evs = post(t, s, "/v1/messages", req)
	var text string
	for _, e := range evs {
		if d, ok := get(e.data, "delta", "text").(string); ok {
			text += d
		}
	}
	if text != "done" || get(evs[len(evs)-2].data, "delta", "stop_reason") != "end_turn" {
		t.Errorf("second turn: text %q, events %v", text, evs)
	}

	reqs := s.Requests()
	if len(reqs) != 2 || reqs[0].Turn != 0 || reqs[1].Turn != 1 || reqs[0].Cwd != "/work/tree" || reqs[0].API != "anthropic" {
		t.Fatalf("requests %+v", reqs)
	}
	if !strings.HasPrefix(reqs[0].ToolID, "toolu_") || get(block, "id") != reqs[0].ToolID || reqs[1].ToolID != "" {
		t.Errorf("tool ids %q %q, block %v", reqs[0].ToolID, reqs[1].ToolID, block)
	}
	if reqs[0].Usage != (Usage{7, 3}) || reqs[1].Usage != DefaultUsage {
		t.Errorf("usage %+v %+v", reqs[0].Usage, reqs[1].Usage)
	}
	if s.Remaining() != 0 || len(s.Errors()) != 0 {
		t.Errorf("remaining %d, errors %v", s.Remaining(), s.Errors())
	}

	// The script is used up: an error, recorded.
	status, evs = post(t, s, "/v1/messages", req)
	if status != 400 || get(evs[0].data, "error", "type") != "invalid_request_error" || len(s.Errors()) != 1 {
		t.Errorf("after the script: %d %v, errors %v", status, evs, s.Errors())
	}
}

func TestSideRequestsTakeNoTurn(t *testing.T) {
	s := Start(Say("the answer"))
	defer s.Close()
	// No tools: a title or similar request.
	status, evs := post(t, s, "/v1/messages", map[string]any{"model": "m", "messages": []any{}})
	if status != 200 || get(evs[0].data, "content", 0, "text") != "ok" {
		t.Errorf("side request: %d %v", status, evs)
	}
	// Gemini's router gets JSON it can read.
	status, evs = post(t, s, "/v1beta/models/gemini-x:generateContent", map[string]any{"contents": []any{}})
	text, _ := get(evs[0].data, "candidates", 0, "content", "parts", 0, "text").(string)
	var route map[string]any
	if status != 200 || json.Unmarshal([]byte(text), &route) != nil || route["model_choice"] != "flash" {
		t.Errorf("routing answer: %d %v", status, evs)
	}
	// Claude Code's connectivity check.
	resp, err := http.Head(s.URL() + "/")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD /: %v %v", resp, err)
	}
	if s.Remaining() != 1 || len(s.TurnRequests()) != 0 || len(s.Requests()) != 3 || len(s.Errors()) != 0 {
		t.Errorf("remaining %d, requests %+v, errors %v", s.Remaining(), s.Requests(), s.Errors())
	}
	resp, err = http.Get(s.URL() + "/v1/unknown")
	if err != nil || resp.StatusCode != 404 || len(s.Errors()) != 1 {
		t.Errorf("unknown path: %v %v, errors %v", resp, err, s.Errors())
	}
}

func TestAnthropicWithoutStreamAndFailures(t *testing.T) {
	s := Start(Fail(529, "busy"), Call(OpenCodeWrite("a.txt", "x")))
	defer s.Close()
	req := map[string]any{"model": "m", "tools": anyTool, "messages": []any{}}
	status, evs := post(t, s, "/v1/messages", req)
	if status != 529 || get(evs[0].data, "error", "type") != "overloaded_error" || get(evs[0].data, "error", "message") != "busy" {
		t.Errorf("failure: %d %v", status, evs)
	}
	status, evs = post(t, s, "/v1/messages", req)
	msg := evs[0].data
	// No working directory in the request: the path stays relative.
	if status != 200 || msg["stop_reason"] != "tool_use" || get(msg, "content", 0, "name") != "write" || get(msg, "content", 0, "input", "filePath") != "a.txt" {
		t.Errorf("non-streamed answer: %d %v", status, msg)
	}
	if r := s.Requests(); r[0].Usage != (Usage{}) || r[1].Usage != DefaultUsage {
		t.Errorf("usage recorded %+v %+v", r[0].Usage, r[1].Usage)
	}
}

func TestResponsesStreamsItems(t *testing.T) {
	s := Start(
		Call(CodexExec("printf hi > hello.txt")),
		Call(CodexApplyPatch("hello.txt", "one\ntwo\n")),
		Say("Created hello.txt.").WithUsage(11, 5),
	)
	defer s.Close()
	req := map[string]any{"model": "fake-model", "stream": true, "tools": anyTool, "input": []any{
		map[string]any{"type": "message", "role": "user", "content": []any{map[string]any{"type": "input_text", "text": "<environment_context>\n  <cwd>/w/t</cwd>\n</environment_context>"}}},
	}}
	doneItem := func(evs []sseEvent) map[string]any {
		for _, e := range evs {
			if e.name == "response.output_item.done" {
				return get(e.data, "item").(map[string]any)
			}
		}
		t.Fatalf("no output_item.done in %v", evs)
		return nil
	}
	_, evs := post(t, s, "/v1/responses", req)
	if evs[0].name != "response.created" || evs[len(evs)-1].name != "response.completed" {
		t.Errorf("events %v", evs)
	}
	item := doneItem(evs)
	var args map[string]string
	_ = json.Unmarshal([]byte(item["arguments"].(string)), &args)
	if item["type"] != "function_call" || item["name"] != "exec_command" || args["cmd"] != "printf hi > hello.txt" || args["workdir"] != "/w/t" {
		t.Errorf("function call %v", item)
	}
	if item["call_id"] != s.Requests()[0].ToolID {
		t.Errorf("call_id %v, recorded %q", item["call_id"], s.Requests()[0].ToolID)
	}

	_, evs = post(t, s, "/v1/responses", req)
	item = doneItem(evs)
	if item["type"] != "custom_tool_call" || item["input"] != "*** Begin Patch\n*** Add File: hello.txt\n+one\n+two\n*** End Patch\n" {
		t.Errorf("custom tool call %v", item)
	}

	_, evs = post(t, s, "/v1/responses", req)
	item = doneItem(evs)
	if item["type"] != "message" || get(item, "content", 0, "text") != "Created hello.txt." {
		t.Errorf("message %v", item)
	}
	last := evs[len(evs)-1].data
	if get(last, "response", "usage", "input_tokens") != 11.0 || get(last, "response", "usage", "output_tokens") != 5.0 {
		t.Errorf("completed %v", last)
	}
}

func TestGeminiStreamsFunctionCall(t *testing.T) {
	s := Start(Turn{Text: "Writing.", Tool: &ToolCall{Name: "write_file", Input: map[string]any{"file_path": Cwd + "/h.txt", "content": "x"}}, Usage: Usage{9, 4}})
	defer s.Close()
	req := map[string]any{"contents": []any{map[string]any{"role": "user", "parts": []any{
		map[string]any{"text": "<session_context>\n- **Workspace Directories:**\n  - /g/repo\n- **Directory Structure:**\n"},
	}}}}
	status, evs := post(t, s, "/v1beta/models/gemini-y:streamGenerateContent?alt=sse", req)
	if status != 200 || len(evs) != 3 {
		t.Fatalf("%d %v", status, evs)
	}
	var text string
	for _, e := range evs[:2] {
		text += get(e.data, "candidates", 0, "content", "parts", 0, "text").(string)
		if get(e.data, "usageMetadata") != nil {
			t.Errorf("usage before the last chunk: %v", e.data)
		}
	}
	call := get(evs[2].data, "candidates", 0, "content", "parts", 0, "functionCall")
	if text != "Writing." || get(call, "name") != "write_file" || get(call, "args", "file_path") != "/g/repo/h.txt" {
		t.Errorf("text %q, call %v", text, call)
	}
	if get(evs[2].data, "candidates", 0, "finishReason") != "STOP" || get(evs[2].data, "usageMetadata", "promptTokenCount") != 9.0 || get(evs[2].data, "modelVersion") != "gemini-y" {
		t.Errorf("last chunk %v", evs[2].data)
	}
	if r := s.Requests()[0]; r.Cwd != "/g/repo" || r.API != "gemini" || r.Turn != 0 {
		t.Errorf("recorded %+v", r)
	}
}

func TestHalvesKeepsCharacters(t *testing.T) {
	for _, s := range []string{"", "a", "ab", "héllo wörld", "日本語"} {
		parts := halves(s)
		if strings.Join(parts, "") != s {
			t.Errorf("halves(%q) = %q", s, parts)
		}
		for _, p := range parts {
			if !json.Valid([]byte(`"`+p+`"`)) || strings.ContainsRune(p, '\uFFFD') {
				t.Errorf("halves(%q) split a character: %q", s, parts)
			}
		}
	}
}
