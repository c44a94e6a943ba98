package fakemodel

import (
	"encoding/json"
	"net/http"
)

// sideAnswer is what requests outside the conversation get.
const sideAnswer = "ok"

// anthropic answers POST /v1/messages (Claude Code, OpenCode).
func (s *Server) anthropic(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Model  string `json:"model"`
		Stream bool   `json:"stream"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		s.take(r, body, "anthropic", false)
		s.errorf("POST %s: bad JSON: %v", r.URL.RequestURI(), err)
		anthropicError(w, http.StatusBadRequest, "fakemodel: request body is not JSON")
		return
	}
	turn, ri, cwd, ok := s.take(r, body, "anthropic", hasTools(body))
	switch {
	case !ok:
		anthropicError(w, http.StatusBadRequest, "fakemodel: no scripted turn left")
		return
	case turn.Status != 0:
		anthropicError(w, turn.Status, turn.ErrorMessage)
		return
	case turn.Text == "" && turn.Tool == nil:
		turn.Text = sideAnswer
	}
	model := req.Model
	if model == "" {
		model = "claude-fake"
	}
	u := turn.usage()
	s.answered(ri, u)
	msgID := s.newID("msg")
	var toolID string
	var input map[string]any
	if turn.Tool != nil {
		toolID = s.toolID(ri, "toolu")
		input = turn.Tool.input(cwd)
	}
	stop := "end_turn"
	if turn.Tool != nil {
		stop = "tool_use"
	}
	usage := func(out int64) map[string]any {
		return map[string]any{
			"input_tokens": u.InputTokens, "output_tokens": out,
			"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
		}
	}

	if !req.Stream {
		var content []any
		if turn.Text != "" {
			content = append(content, map[string]any{"type": "text", "text": turn.Text})
		}
		if turn.Tool != nil {
			content = append(content, map[string]any{"type": "tool_use", "id": toolID, "name": turn.Tool.Name, "input": input})
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": msgID, "type": "message", "role": "assistant", "model": model,
			"content": content, "stop_reason": stop, "stop_sequence": nil, "usage": usage(u.OutputTokens),
		})
		return
	}

	e := startSSE(w)
	e.event("message_start", map[string]any{"type": "message_start", "message": map[string]any{
		"id": msgID, "type": "message", "role": "assistant", "model": model, "content": []any{},
		"stop_reason": nil, "stop_sequence": nil, "usage": usage(1),
	}})
	index := 0
	if turn.Text != "" {
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "text", "text": ""}})
		for _, part := range halves(turn.Text) {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "text_delta", "text": part}})
		}
		e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
		index++
	}
	if turn.Tool != nil {
		args, _ := json.Marshal(input)
		e.event("content_block_start", map[string]any{"type": "content_block_start", "index": index,
			"content_block": map[string]any{"type": "tool_use", "id": toolID, "name": turn.Tool.Name, "input": map[string]any{}}})
		for _, part := range halves(string(args)) {
			e.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": index,
				"delta": map[string]any{"type": "input_json_delta", "partial_json": part}})
		}
		e.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": index})
	}
	e.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]any{"output_tokens": u.OutputTokens}})
	e.event("message_stop", map[string]any{"type": "message_stop"})
}

// anthropicError writes an Anthropic API error.
func anthropicError(w http.ResponseWriter, status int, message string) {
	kind := "api_error"
	switch status {
	case http.StatusBadRequest:
		kind = "invalid_request_error"
	case http.StatusUnauthorized:
		kind = "authentication_error"
	case http.StatusForbidden:
		kind = "permission_error"
	case http.StatusNotFound:
		kind = "not_found_error"
	case http.StatusTooManyRequests:
		kind = "rate_limit_error"
	case 529:
		kind = "overloaded_error"
	}
	writeJSON(w, status, map[string]any{"type": "error", "error": map[string]any{"type": kind, "message": message}})
}
