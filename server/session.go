package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.lsp.dev/jsonrpc2"
	"go.uber.org/zap"

	"github.com/bgagents/bgagents/agents"
)

// lifecycle is where a session is in the LSP lifecycle.
type lifecycle int

const (
	lifeNew lifecycle = iota
	lifeInitialized
	lifeShutdown
)

func (l lifecycle) String() string {
	switch l {
	case lifeNew:
		return "new"
	case lifeInitialized:
		return "initialized"
	case lifeShutdown:
		return "shut down"
	}
	return fmt.Sprintf("lifecycle(%d)", int(l))
}

// Session is one client connection: an editor's LSP session or a CLI call.
type Session struct {
	srv  *Server
	id   int
	conn jsonrpc2.Conn
	log  *zap.Logger
	ctx  context.Context
	stop context.CancelFunc

	// guards everything below
	mu       sync.Mutex
	life     lifecycle
	isLSP    bool // sent initialize
	notifies bool // declared experimental.bgagents.notifications
	progress bool // supports window/workDoneProgress
	rootPath string
	follows  map[string]int64  // agent id → first seq to forward
	spawned  map[string]string // agent id → progress token
	docs     map[string]string // open documents: uri → text
	stalled  map[string]bool   // agents last reported stalled
	inflight map[string]*inflight
}

func newSession(srv *Server, id int, rwc io.ReadWriteCloser) *Session {
	ctx, stop := context.WithCancel(srv.ctx)
	s := &Session{
		srv: srv, id: id, log: srv.log.With(zap.Int("session", id)), ctx: ctx, stop: stop,
		follows: map[string]int64{}, stalled: map[string]bool{}, spawned: map[string]string{}, docs: map[string]string{},
		inflight: map[string]*inflight{},
	}
	s.conn = jsonrpc2.NewConn(NewStream(rwc, srv.opts.MaxMessage))
	return s
}

func (s *Session) run() {
	s.conn.Go(s.ctx, s.handle)
	go s.pump()
	select {
	case <-s.conn.Done():
	case <-s.ctx.Done():
		s.conn.Close()
		<-s.conn.Done()
	}
	s.stop()
	if err := s.conn.Err(); err != nil && !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "closed") {
		s.log.Debug("session ended", zap.Error(err))
	}
}

// pump forwards bus notices to the client.
func (s *Session) pump() {
	mgr, err := s.srv.Manager(s.ctx)
	if err != nil {
		return
	}
	sub := mgr.Bus().Subscribe()
	defer sub.Close()
	for {
		ns, ok := sub.Next(s.ctx)
		if !ok {
			return
		}
		for _, n := range ns {
			if err := s.deliver(n); err != nil {
				return
			}
		}
	}
}

func (s *Session) deliver(n agents.Notice) error {
	ctx := s.ctx
	switch {
	case n.Agent != nil:
		if err := s.conn.Notify(ctx, NotifyAgentChanged, AgentChangedParams{Agent: n.Agent}); err != nil {
			return err
		}
		// A preparation that ends any other way than by starting the agent
		// (cancelled while queued, a pipeline step whose predecessor
		// failed) ends its progress here.
		if st := n.Agent.State; st != agents.StateQueued && st != agents.StateProvisioning {
			s.mu.Lock()
			token, ok := s.spawned[n.Agent.ID]
			delete(s.spawned, n.Agent.ID)
			s.mu.Unlock()
			if ok && token != "" {
				msg := string(st)
				if n.Agent.Error != "" && st != agents.StateRunning {
					msg += ": " + n.Agent.Error
				}
				if err := s.conn.Notify(ctx, "$/progress", progressParams(token, &agents.ProgressNotice{Message: msg, Done: true})); err != nil {
					return err
				}
			}
		}
		s.mu.Lock()
		plain := s.isLSP && !s.notifies
		s.mu.Unlock()
		if plain {
			if msg, typ := finishMessage(n.Agent); msg != "" {
				return s.conn.Notify(ctx, "window/showMessage", map[string]any{"type": typ, "message": msg})
			}
			// A stall is told once, when it begins.
			s.mu.Lock()
			was := s.stalled[n.Agent.ID]
			now := n.Agent.StalledSince != nil && n.Agent.State == agents.StateRunning
			s.stalled[n.Agent.ID] = now
			s.mu.Unlock()
			if now && !was {
				msg := fmt.Sprintf("bgagents: %s has printed nothing since %s", n.Agent.Name, n.Agent.StalledSince.Local().Format("15:04:05"))
				return s.conn.Notify(ctx, "window/showMessage", map[string]any{"type": 2, "message": msg})
			}
		}
	case n.Output != nil:
		s.mu.Lock()
		from, follow := s.follows[n.Output.ID]
		s.mu.Unlock()
		if !follow {
			return nil
		}
		// Events the log reply already carried were published before the
		// follow began; they are not sent again.
		evs := n.Output.Events
		for len(evs) > 0 && evs[0].Seq < from {
			evs = evs[1:]
		}
		if len(evs) > 0 {
			return s.conn.Notify(ctx, NotifyOutput, OutputParams{ID: n.Output.ID, Events: evs})
		}
	case n.Progress != nil:
		s.mu.Lock()
		token, ok := s.spawned[n.Progress.ID]
		if n.Progress.Done {
			delete(s.spawned, n.Progress.ID)
		}
		s.mu.Unlock()
		if ok && token != "" {
			return s.conn.Notify(ctx, "$/progress", progressParams(token, n.Progress))
		}
	}
	return nil
}

// finishMessage is what a plain LSP client is told when an agent ends.
func finishMessage(a *agents.Agent) (string, int) {
	const (
		msgError   = 1
		msgWarning = 2
		msgInfo    = 3
	)
	switch a.State {
	case agents.StateSucceeded:
		return fmt.Sprintf("bgagents: %s finished (%s, +%d −%d) on %s", a.Name, plural(a.Diff.Files, "file"), a.Diff.Additions, a.Diff.Deletions, a.Branch), msgInfo
	case agents.StateFailed:
		return fmt.Sprintf("bgagents: %s failed: %s", a.Name, a.Error), msgError
	case agents.StateNeedsInput:
		return fmt.Sprintf("bgagents: %s %s (answer with bgagents msg %s …)", a.Name, a.Error, a.Name), msgWarning
	case agents.StateLost:
		return fmt.Sprintf("bgagents: %s was lost: %s", a.Name, a.Error), msgError
	}
	return "", 0
}

func progressParams(token string, p *agents.ProgressNotice) map[string]any {
	v := map[string]any{"kind": "report", "message": p.Message}
	if p.Done {
		v = map[string]any{"kind": "end", "message": p.Message}
	}
	return map[string]any{"token": token, "value": v}
}

// handle is the connection's handler. It never blocks the read loop:
// requests run in their own goroutine and reply from there; a panic in a
// handler becomes an InternalError reply and the daemon keeps serving.
func (s *Session) handle(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	method := req.Method()
	if _, isCall := req.(*jsonrpc2.Call); !isCall {
		s.notification(method, req.Params())
		return nil
	}
	call := req.(*jsonrpc2.Call)
	key := fmt.Sprintf("%q", call.ID())
	h, ok := s.route(method)
	if !ok {
		return reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.MethodNotFound, "method %q is not supported by bgagents; see docs/protocol.md for the methods it serves", method))
	}
	s.mu.Lock()
	life := s.life
	s.mu.Unlock()
	if life == lifeShutdown && method != "shutdown" {
		return reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.InvalidRequest, "the session is shut down; only exit is accepted"))
	}
	rctx, cancel := context.WithCancel(s.ctx)
	entry := &inflight{cancel: cancel}
	s.mu.Lock()
	s.inflight[key] = entry
	s.mu.Unlock()
	params := req.Params()
	go func() {
		defer func() {
			s.mu.Lock()
			if s.inflight[key] == entry {
				delete(s.inflight, key)
			}
			s.mu.Unlock()
			cancel()
		}()
		result, err := s.safeCall(rctx, method, h, params)
		if rerr := reply(s.ctx, result, toRPCError(err)); rerr != nil {
			s.log.Debug("reply", zap.String("method", method), zap.Error(rerr))
		}
		if method == MethodStopDaemon && err == nil {
			s.srv.cancel()
		}
	}()
	return nil
}

// inflight is a request being handled, cancellable by $/cancelRequest.
type inflight struct{ cancel context.CancelFunc }

type handlerFunc func(s *Session, ctx context.Context, params json.RawMessage) (any, error)

func (s *Session) safeCall(ctx context.Context, method string, h handlerFunc, params json.RawMessage) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("handler panic", zap.String("method", method), zap.Any("panic", r), zap.String("stack", string(debug.Stack())))
			result, err = nil, jsonrpc2.Errorf(jsonrpc2.InternalError, "internal error in %s: %v (the daemon keeps running; please report this with %s)", method, r, s.srv.opts.Paths.Log())
		}
	}()
	return h(s, ctx, params)
}

// notification handles a message that needs no reply, inline (document
// sync must stay in order).
func (s *Session) notification(method string, params json.RawMessage) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("notification panic", zap.String("method", method), zap.Any("panic", r))
		}
	}()
	switch method {
	case "initialized":
	case "exit":
		s.stop()
	case "$/cancelRequest":
		var p struct {
			ID json.RawMessage `json:"id"`
		}
		if json.Unmarshal(params, &p) != nil {
			return
		}
		key := cancelKey(p.ID)
		s.mu.Lock()
		entry := s.inflight[key]
		s.mu.Unlock()
		if entry != nil {
			entry.cancel()
		}
	case "window/workDoneProgress/cancel":
		// The user cancelled a preparation's progress: cancel the agent.
		var p struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(params, &p) != nil {
			return
		}
		s.mu.Lock()
		id := ""
		for agentID, token := range s.spawned {
			if token == p.Token {
				id = agentID
			}
		}
		s.mu.Unlock()
		if id != "" {
			go s.cancelFromProgress(id)
		}
	case "textDocument/didOpen", "textDocument/didChange", "textDocument/didClose":
		s.syncDocument(method, params)
	default:
		// Unknown notifications are ignored, as JSON-RPC requires (there is
		// no way to answer them).
	}
}

// cancelFromProgress cancels an agent whose preparation progress the user
// cancelled. It runs on its own goroutine: never on the read loop.
func (s *Session) cancelFromProgress(id string) {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	mgr, err := s.manager(ctx)
	if err != nil {
		return
	}
	if _, err := mgr.Cancel(ctx, id, ""); err != nil && !errors.Is(err, agents.ErrState) {
		s.log.Warn("cancel from progress", zap.String("id", id), zap.Error(err))
	}
}

// cancelKey turns a raw JSON id into the key of inflight: numbers as #N
// (even when they arrive as 5.0), strings quoted.
func cancelKey(raw json.RawMessage) string {
	var n float64
	if err := json.Unmarshal(raw, &n); err == nil {
		return fmt.Sprintf("#%d", int64(n))
	}
	var str string
	if err := json.Unmarshal(raw, &str); err == nil {
		return fmt.Sprintf("%q", str)
	}
	return string(raw)
}

// decode unmarshals params strictly: unknown fields and wrong types are
// InvalidParams errors naming the field.
func decode(params json.RawMessage, v any) error {
	if len(bytes.TrimSpace(params)) == 0 || string(bytes.TrimSpace(params)) == "null" {
		params = json.RawMessage("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: expected an object, got %s", te.Value)
			}
			return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field %q must be %s, not %s", field, typeName(te.Type.String()), te.Value)
		case errors.As(err, &se):
			return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %v", err)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: unknown field %s", strings.TrimPrefix(err.Error(), "json: unknown field "))
		}
		return jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: %v", err)
	}
	return nil
}

func typeName(t string) string {
	switch {
	case t == "string":
		return "a string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || strings.HasPrefix(t, "float"):
		return "a number"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "[]"):
		return "an array"
	}
	return "an object"
}

// toRPCError maps an error to a JSON-RPC error with a real code.
func toRPCError(err error) error {
	if err == nil {
		return nil
	}
	var re *jsonrpc2.Error
	if errors.As(err, &re) {
		return re
	}
	code := jsonrpc2.InternalError
	switch {
	case errors.Is(err, context.Canceled):
		return jsonrpc2.NewError(-32800, "request cancelled") // LSP RequestCancelled
	case errors.Is(err, agents.ErrNotFound):
		code = CodeAgentNotFound
	case errors.Is(err, agents.ErrAmbiguous):
		code = CodeAmbiguousAgent
	case errors.Is(err, agents.ErrInvalid):
		code = jsonrpc2.InvalidParams
	case errors.Is(err, agents.ErrState):
		code = CodeInvalidState
	case errors.Is(err, agents.ErrRefused):
		code = CodeRefused
	case errors.Is(err, agents.ErrConflict):
		code = CodeConflict
	case errors.Is(err, agents.ErrUnavailable):
		code = CodeAgentMissing
	case errors.Is(err, agents.ErrConfig):
		code = CodeConfig
	case errors.Is(err, agents.ErrNotRepo):
		code = CodeNotARepository
	case errors.Is(err, agents.ErrExternal):
		code = CodeExternal
	}
	return jsonrpc2.NewError(code, err.Error())
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
