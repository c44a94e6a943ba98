package fakemodel

import (
	"encoding/json"
	"net/http"
)

// responses answers POST /v1/responses (OpenAI Responses API, as Codex
// streams it).
func (s *Server) responses(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.take(r, body, "responses", false)
		s.errorf("POST %s: bad JSON: %v", r.URL.RequestURI(), err)
		openAIError(w, http.StatusBadRequest, "fakemodel: request body is not JSON")
		return
	}
	turn, ri, cwd, ok := s.take(r, body, "responses", hasTools(body))
	switch {
	case !ok:
		openAIError(w, http.StatusBadRequest, "fakemodel: no scripted turn left")
		return
	case turn.Status != 0:
		openAIError(w, turn.Status, turn.ErrorMessage)
		return
	case turn.Text == "" && turn.Tool == nil:
		turn.Text = sideAnswer
	}
	model := req.Model
	if model == "" {
		model = "fake-model"
	}
	u := turn.usage()
	s.answered(ri, u)
	respID := s.newID("resp")
	e := startSSE(w)
	e.event("response.created", map[string]any{"type": "response.created", "response": map[string]any{
		"id": respID, "object": "response", "status": "in_progress", "model": model, "output": []any{},
	}})
	var output []any
	if turn.Text != "" {
		id := s.newID("msg")
		i := len(output)
		e.event("response.output_item.added", map[string]any{"type": "response.output_item.added", "output_index": i,
			"item": map[string]any{"id": id, "type": "message", "role": "assistant", "status": "in_progress", "content": []any{}}})
		for _, part := range halves(turn.Text) {
			e.event("response.output_text.delta", map[string]any{"type": "response.output_text.delta",
				"item_id": id, "output_index": i, "content_index": 0, "delta": part})
		}
		item := map[string]any{"id": id, "type": "message", "role": "assistant", "status": "completed",
			"content": []any{map[string]any{"type": "output_text", "text": turn.Text, "annotations": []any{}}}}
		e.event("response.output_item.done", map[string]any{"type": "response.output_item.done", "output_index": i, "item": item})
		output = append(output, item)
	}
	if c := turn.Tool; c != nil {
		callID := s.toolID(ri, "call")
		var item map[string]any
		if c.Custom != "" {
			item = map[string]any{"id": s.newID("ctc"), "type": "custom_tool_call", "status": "completed",
				"call_id": callID, "name": c.Name, "input": expand(c.Custom, cwd)}
		} else {
			args, _ := json.Marshal(c.input(cwd))
			item = map[string]any{"id": s.newID("fc"), "type": "function_call", "status": "completed",
				"call_id": callID, "name": c.Name, "arguments": string(args)}
		}
		i := len(output)
		e.event("response.output_item.added", map[string]any{"type": "response.output_item.added", "output_index": i, "item": item})
		e.event("response.output_item.done", map[string]any{"type": "response.output_item.done", "output_index": i, "item": item})
		output = append(output, item)
	}
	e.event("response.completed", map[string]any{"type": "response.completed", "response": map[string]any{
		"id": respID, "object": "response", "status": "completed", "model": model, "output": output,
		"usage": map[string]any{
			"input_tokens": u.InputTokens, "input_tokens_details": map[string]any{"cached_tokens": 0},
			"output_tokens": u.OutputTokens, "output_tokens_details": map[string]any{"reasoning_tokens": 0},
			"total_tokens": u.InputTokens + u.OutputTokens,
		},
	}})
}

// openAIError writes an OpenAI API error.
func openAIError(w http.ResponseWriter, status int, message string) {
	kind := "server_error"
	if status >= 400 && status < 500 {
		kind = "invalid_request_error"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"type": kind, "code": nil, "message": message}})
}
