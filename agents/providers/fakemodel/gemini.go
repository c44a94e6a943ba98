package fakemodel

import (
	"encoding/json"
	"net/http"
	"strings"
)

// geminiSideAnswer answers the Gemini CLI's JSON side questions at once:
// the model router (model_choice, complexity_score) and the next-speaker
// check (next_speaker).
const geminiSideAnswer = `{"reasoning":"fakemodel","model_choice":"flash","complexity_reasoning":"fakemodel","complexity_score":1,"next_speaker":"user"}`

// geminiModel is the model named in /v1beta/models/MODEL:method.
func geminiModel(path string) string {
	m := path[strings.LastIndex(path, "/")+1:]
	if i := strings.IndexByte(m, ':'); i >= 0 {
		m = m[:i]
	}
	return m
}

func geminiUsage(u Usage) map[string]any {
	return map[string]any{
		"promptTokenCount": u.InputTokens, "candidatesTokenCount": u.OutputTokens,
		"totalTokenCount": u.InputTokens + u.OutputTokens,
	}
}

// geminiGenerate answers :generateContent, which the Gemini CLI uses for
// side questions that expect JSON; it takes no turn.
func (s *Server) geminiGenerate(w http.ResponseWriter, r *http.Request, body []byte) {
	_, ri, _, _ := s.take(r, body, "gemini", false)
	s.answered(ri, DefaultUsage)
	writeJSON(w, http.StatusOK, map[string]any{
		"candidates": []any{map[string]any{
			"content":      map[string]any{"role": "model", "parts": []any{map[string]any{"text": geminiSideAnswer}}},
			"finishReason": "STOP", "index": 0,
		}},
		"usageMetadata": geminiUsage(DefaultUsage),
		"modelVersion":  geminiModel(r.URL.Path),
		"responseId":    s.newID("resp"),
	})
}

// geminiStream answers :streamGenerateContent?alt=sse: the conversation.
func (s *Server) geminiStream(w http.ResponseWriter, r *http.Request, body []byte) {
	if !json.Valid(body) {
		s.take(r, body, "gemini", false)
		s.errorf("POST %s: bad JSON", r.URL.RequestURI())
		geminiError(w, http.StatusBadRequest, "fakemodel: request body is not JSON")
		return
	}
	turn, ri, cwd, ok := s.take(r, body, "gemini", true)
	switch {
	case !ok:
		geminiError(w, http.StatusBadRequest, "fakemodel: no scripted turn left")
		return
	case turn.Status != 0:
		geminiError(w, turn.Status, turn.ErrorMessage)
		return
	case turn.Text == "" && turn.Tool == nil:
		turn.Text = sideAnswer
	}
	model := geminiModel(r.URL.Path)
	respID := s.newID("resp")
	s.answered(ri, turn.usage())
	chunk := func(parts []any, last bool) map[string]any {
		cand := map[string]any{"content": map[string]any{"role": "model", "parts": parts}, "index": 0}
		c := map[string]any{"candidates": []any{cand}, "modelVersion": model, "responseId": respID}
		if last {
			cand["finishReason"] = "STOP"
			c["usageMetadata"] = geminiUsage(turn.usage())
		}
		return c
	}
	e := startSSE(w)
	if turn.Text != "" {
		texts := halves(turn.Text)
		for i, t := range texts {
			e.event("", chunk([]any{map[string]any{"text": t}}, turn.Tool == nil && i == len(texts)-1))
		}
	}
	if c := turn.Tool; c != nil {
		call := map[string]any{"name": c.Name, "args": c.input(cwd), "id": s.toolID(ri, "call")}
		e.event("", chunk([]any{map[string]any{"functionCall": call}}, true))
	}
}

// geminiError writes a Google API error.
func geminiError(w http.ResponseWriter, status int, message string) {
	st := "INTERNAL"
	switch status {
	case http.StatusBadRequest:
		st = "INVALID_ARGUMENT"
	case http.StatusUnauthorized:
		st = "UNAUTHENTICATED"
	case http.StatusForbidden:
		st = "PERMISSION_DENIED"
	case http.StatusNotFound:
		st = "NOT_FOUND"
	case http.StatusTooManyRequests:
		st = "RESOURCE_EXHAUSTED"
	case http.StatusServiceUnavailable:
		st = "UNAVAILABLE"
	}
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": message, "status": st}})
}
