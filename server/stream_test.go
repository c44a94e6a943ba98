package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"
)

// stDeadline bounds every blocking step of these tests.
const stDeadline = 10 * time.Second

// stMemConn is an in-memory io.ReadWriteCloser: reads come from r, writes are kept.
type stMemConn struct {
	r io.Reader

	// guards out
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *stMemConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func (c *stMemConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.Write(p)
}

func (c *stMemConn) Close() error { return nil }

func (c *stMemConn) written() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return bytes.Clone(c.out.Bytes())
}

// stFrame wraps body in standard LSP framing.
func stFrame(body string) string {
	return fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(body), body)
}

// stReadFrame reads one frame as this package writes them, strictly.
func stReadFrame(r *bufio.Reader) ([]byte, error) {
	length := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if line != "" && errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("partial header line %q: %w", line, io.ErrUnexpectedEOF)
			}
			return nil, err
		}
		if line == "\r\n" {
			break
		}
		value, ok := strings.CutPrefix(line, "Content-Length: ")
		if !ok || !strings.HasSuffix(value, "\r\n") {
			return nil, fmt.Errorf("unexpected header line %q", line)
		}
		if length, err = strconv.Atoi(strings.TrimSuffix(value, "\r\n")); err != nil {
			return nil, fmt.Errorf("bad length in %q: %w", line, err)
		}
	}
	if length < 0 {
		return nil, errors.New("frame without Content-Length")
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("reading body: %w", err)
	}
	return body, nil
}

// stParseFrames splits b into frame bodies.
func stParseFrames(b []byte) ([][]byte, error) {
	r := bufio.NewReader(bytes.NewReader(b))
	var bodies [][]byte
	for {
		body, err := stReadFrame(r)
		if errors.Is(err, io.EOF) {
			return bodies, nil
		}
		if err != nil {
			return bodies, err
		}
		bodies = append(bodies, body)
	}
}

// stResp is a response as a client sees it.
type stResp struct {
	JSONRPC string           `json:"jsonrpc"`
	ID      json.RawMessage  `json:"id"`
	Result  json.RawMessage  `json:"result"`
	Error   *jsonrpc2.Error  `json:"error"`
	Method  *json.RawMessage `json:"method"`
}

// stParseResp decodes a response body and checks the members every response has.
func stParseResp(body []byte) (stResp, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return stResp{}, fmt.Errorf("response %s is not a JSON object: %w", body, err)
	}
	if _, ok := members["id"]; !ok {
		return stResp{}, fmt.Errorf("response %s has no id member", body)
	}
	var r stResp
	if err := json.Unmarshal(body, &r); err != nil {
		return r, fmt.Errorf("decoding response %s: %w", body, err)
	}
	if r.JSONRPC != "2.0" {
		return r, fmt.Errorf("response %s lacks \"jsonrpc\":\"2.0\"", body)
	}
	if r.Method != nil {
		return r, fmt.Errorf("response %s has a method", body)
	}
	if (r.Error == nil) == (r.Result == nil) {
		return r, fmt.Errorf("response %s must have exactly one of result and error", body)
	}
	return r, nil
}

// stJSONEqual reports whether a and b hold the same JSON value.
func stJSONEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("invalid JSON %s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

// stEchoHandler answers "echo" with its params and everything else with MethodNotFound.
func stEchoHandler(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
	if req.Method() == "echo" {
		return reply(ctx, req.Params(), nil)
	}
	return reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.MethodNotFound, "method %q not found", req.Method()))
}

// stWaitDone waits for conn to shut down.
func stWaitDone(t *testing.T, conn jsonrpc2.Conn) {
	t.Helper()
	select {
	case <-conn.Done():
	case <-time.After(stDeadline):
		t.Fatal("connection did not shut down before the deadline")
	}
}

// stStartServer serves handler with this package's stream on one end of a pipe
// and returns the raw client end, with a deadline set.
func stStartServer(t *testing.T, max int, handler jsonrpc2.Handler) (net.Conn, *bufio.Reader, jsonrpc2.Conn) {
	t.Helper()
	srv, cli := net.Pipe()
	conn := jsonrpc2.NewConn(NewStream(srv, max))
	ctx, cancel := context.WithCancel(context.Background())
	conn.Go(ctx, handler)
	t.Cleanup(func() {
		cancel()
		_ = cli.Close()
		_ = conn.Close()
		stWaitDone(t, conn)
	})
	if err := cli.SetDeadline(time.Now().Add(stDeadline)); err != nil {
		t.Fatal(err)
	}
	return cli, bufio.NewReader(cli), conn
}

func TestStreamRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func(io.ReadWriteCloser) jsonrpc2.Stream
	}{
		{"upstream client stream", jsonrpc2.NewStream},
		{"hardened client stream", func(rwc io.ReadWriteCloser) jsonrpc2.Stream { return NewStream(rwc, 0) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), stDeadline)
			defer cancel()

			srvEnd, cliEnd := net.Pipe()
			notified := make(chan string, 1)
			srv := jsonrpc2.NewConn(NewStream(srvEnd, DefaultMaxMessage))
			srv.Go(ctx, func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
				if _, ok := req.(*jsonrpc2.Notification); ok {
					notified <- req.Method()
					return reply(ctx, nil, nil)
				}
				return stEchoHandler(ctx, reply, req)
			})
			cli := jsonrpc2.NewConn(tc.client(cliEnd))
			cli.Go(ctx, func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
				return reply(ctx, "pong:"+req.Method(), nil)
			})
			defer func() {
				_ = cli.Close()
				_ = srv.Close()
				stWaitDone(t, cli)
				stWaitDone(t, srv)
			}()

			params := map[string]any{"text": "a <b> & \"c\"", "n": 42.0, "list": []any{1.0, "x"}}
			var got map[string]any
			if _, err := cli.Call(ctx, "echo", params, &got); err != nil {
				t.Fatalf("echo call: %v", err)
			}
			if !reflect.DeepEqual(got, params) {
				t.Fatalf("echo returned %v, want %v", got, params)
			}

			_, err := cli.Call(ctx, "missing", nil, nil)
			var rpcErr *jsonrpc2.Error
			if !errors.As(err, &rpcErr) || rpcErr.Code != jsonrpc2.MethodNotFound {
				t.Fatalf("call of an unknown method returned %v, want a MethodNotFound error", err)
			}

			if err := cli.Notify(ctx, "note", map[string]int{"a": 1}); err != nil {
				t.Fatalf("notify: %v", err)
			}
			select {
			case m := <-notified:
				if m != "note" {
					t.Fatalf("server got notification %q, want note", m)
				}
			case <-ctx.Done():
				t.Fatal("notification not delivered before the deadline")
			}

			// The daemon also calls its clients: responses must pass through.
			var pong string
			if _, err := srv.Call(ctx, "client/ping", nil, &pong); err != nil {
				t.Fatalf("server to client call: %v", err)
			}
			if pong != "pong:client/ping" {
				t.Fatalf("server to client call returned %q", pong)
			}
		})
	}
}

func TestStreamBadInputKeepsConnection(t *testing.T) {
	const max = 1024
	oversize := `{"jsonrpc":"2.0","id":5,"method":"echo","params":{"pad":"`
	oversize += strings.Repeat("x", max+1-len(oversize)-3) + `"}}`
	if len(oversize) != max+1 {
		t.Fatalf("oversize body is %d bytes, want %d", len(oversize), max+1)
	}
	lower := `{"jsonrpc":"2.0","id":6,"method":"echo","params":{"lower":true}}`
	bare := `{"jsonrpc":"2.0","id":"s7","method":"echo","params":[7]}`

	tests := []struct {
		name    string
		raw     string
		code    jsonrpc2.Code // 0: a successful response is expected
		id      string        // expected id, as JSON
		msg     string        // substring of the error message
		result  string        // expected result when code is 0
		noReply bool          // the message is not answered at all
	}{
		{name: "malformed JSON", raw: stFrame(`{"jsonrpc":"2.0","id":1,`), code: jsonrpc2.ParseError, id: "null", msg: "not valid JSON"},
		{name: "trailing garbage", raw: stFrame(`{"jsonrpc":"2.0","id":1,"method":"echo"} x`), code: jsonrpc2.ParseError, id: "null", msg: "not valid JSON"},
		{name: "empty body", raw: "Content-Length: 0\r\n\r\n", code: jsonrpc2.ParseError, id: "null"},
		{name: "empty batch", raw: stFrame(`[]`), code: jsonrpc2.InvalidRequest, id: "null", msg: "batch requests are not supported"},
		{name: "batch", raw: stFrame(`[{"jsonrpc":"2.0","id":1,"method":"echo"}]`), code: jsonrpc2.InvalidRequest, id: "null", msg: "batch requests are not supported"},
		{name: "null body", raw: stFrame(`null`), code: jsonrpc2.InvalidRequest, id: "null", msg: "must be a JSON object"},
		{name: "number body", raw: stFrame(`42`), code: jsonrpc2.InvalidRequest, id: "null", msg: "must be a JSON object, not a number"},
		{name: "jsonrpc 1.0", raw: stFrame(`{"jsonrpc":"1.0","id":1,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "1", msg: `must be "2.0"`},
		{name: "jsonrpc missing", raw: stFrame(`{"id":2,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "2", msg: `lacks "jsonrpc": "2.0"`},
		{name: "id out of int32", raw: stFrame(`{"jsonrpc":"2.0","id":9999999999,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "9999999999", msg: "id 9999999999 is out of range; use a string or a 32-bit integer id"},
		{name: "id just above int32", raw: stFrame(`{"jsonrpc":"2.0","id":2147483648,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "2147483648", msg: "out of range"},
		{name: "fractional id", raw: stFrame(`{"jsonrpc":"2.0","id":1.5,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "1.5", msg: "id 1.5 is not an integer"},
		{name: "exponent id", raw: stFrame(`{"jsonrpc":"2.0","id":1e3,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "1e3", msg: "not an integer"},
		{name: "object id", raw: stFrame(`{"jsonrpc":"2.0","id":{"a":1},"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "null", msg: "id must be a string or a 32-bit integer, not an object"},
		{name: "null id", raw: stFrame(`{"jsonrpc":"2.0","id":null,"method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "null", msg: "not null"},
		{name: "empty string id", raw: stFrame(`{"jsonrpc":"2.0","id":"","method":"echo"}`), code: jsonrpc2.InvalidRequest, id: `""`, msg: "empty string"},
		{name: "method 42", raw: stFrame(`{"jsonrpc":"2.0","id":3,"method":42}`), code: jsonrpc2.InvalidRequest, id: "3", msg: "method must be a string, not a number"},
		{name: "empty method", raw: stFrame(`{"jsonrpc":"2.0","id":3,"method":""}`), code: jsonrpc2.InvalidRequest, id: "3", msg: "method must not be empty"},
		{name: "params string", raw: stFrame(`{"jsonrpc":"2.0","id":4,"method":"echo","params":"str"}`), code: jsonrpc2.InvalidRequest, id: "4", msg: "params must be an object or an array, not a string"},
		{name: "params number in notification", raw: stFrame(`{"jsonrpc":"2.0","method":"echo","params":5}`), code: jsonrpc2.InvalidRequest, id: "null", msg: "params must be"},
		{name: "neither method nor id", raw: stFrame(`{"jsonrpc":"2.0"}`), code: jsonrpc2.InvalidRequest, id: "null", msg: "neither a method nor an id"},
		{name: "id without method", raw: stFrame(`{"jsonrpc":"2.0","id":4}`), code: jsonrpc2.InvalidRequest, id: "4", msg: "no method"},
		{name: "method spelled Method", raw: stFrame(`{"jsonrpc":"2.0","id":7,"Method":"echo"}`), code: jsonrpc2.InvalidRequest, id: "7", msg: "no method"},
		{name: "body over the limit", raw: stFrame(oversize), code: jsonrpc2.InvalidRequest, id: "null", msg: "message of 1025 bytes exceeds the 1024-byte limit; send smaller requests"},
		{name: "lowercase content-length", raw: fmt.Sprintf("content-length: %d\r\n\r\n%s", len(lower), lower), id: "6", result: `{"lower":true}`},
		{name: "content-type first, bare newlines", raw: fmt.Sprintf("Content-Type: application/vscode-jsonrpc; charset=utf-8\nCONTENT-LENGTH:%d\n\n%s", len(bare), bare), id: `"s7"`, result: `[7]`},
		{name: "blank line before the frame", raw: "\r\n" + stFrame(`{"jsonrpc":"2.0","id":8,"method":"echo","params":[8],"extra":true}`), id: "8", result: "[8]"},
		{name: "params null", raw: stFrame(`{"jsonrpc":"2.0","id":9,"method":"missing","params":null}`), code: jsonrpc2.MethodNotFound, id: "9", msg: "missing"},
		{name: "valid notification", raw: stFrame(`{"jsonrpc":"2.0","method":"echo","params":{}}`), noReply: true},
		{name: "error response with null id", raw: stFrame(`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}`), noReply: true},
		{name: "response to nobody", raw: stFrame(`{"jsonrpc":"2.0","id":77,"result":{"a":1}}`), noReply: true},
		{name: "malformed response", raw: stFrame(`{"jsonrpc":"2.0","id":78,"error":"boom"}`), noReply: true},
		{name: "response with huge id", raw: stFrame(`{"jsonrpc":"2.0","id":9999999999,"result":1}`), noReply: true},
	}

	cli, rd, conn := stStartServer(t, max, stEchoHandler)
	for i, tc := range tests {
		if _, err := io.WriteString(cli, tc.raw); err != nil {
			t.Fatalf("%s: writing: %v", tc.name, err)
		}
		if !tc.noReply {
			body, err := stReadFrame(rd)
			if err != nil {
				t.Fatalf("%s: reading the answer: %v", tc.name, err)
			}
			r, err := stParseResp(body)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			if string(r.ID) != tc.id {
				t.Errorf("%s: id %s, want %s", tc.name, r.ID, tc.id)
			}
			switch {
			case tc.code == 0 && r.Error != nil:
				t.Errorf("%s: got error %d %q, want a result", tc.name, r.Error.Code, r.Error.Message)
			case tc.code == 0 && !stJSONEqual(t, r.Result, []byte(tc.result)):
				t.Errorf("%s: result %s, want %s", tc.name, r.Result, tc.result)
			case tc.code != 0 && r.Error == nil:
				t.Errorf("%s: got result %s, want error %d", tc.name, r.Result, tc.code)
			case tc.code != 0 && (r.Error.Code != tc.code || !strings.Contains(r.Error.Message, tc.msg)):
				t.Errorf("%s: error %d %q, want %d containing %q", tc.name, r.Error.Code, r.Error.Message, tc.code, tc.msg)
			}
		}

		// The connection must still answer a valid call.
		id := 1000 + i
		if _, err := io.WriteString(cli, stFrame(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"echo","params":{"n":%d}}`, id, i))); err != nil {
			t.Fatalf("%s: writing the follow-up call: %v", tc.name, err)
		}
		body, err := stReadFrame(rd)
		if err != nil {
			t.Fatalf("%s: reading the follow-up answer: %v", tc.name, err)
		}
		r, err := stParseResp(body)
		if err != nil {
			t.Fatalf("%s: follow-up: %v", tc.name, err)
		}
		if string(r.ID) != strconv.Itoa(id) || r.Error != nil || !stJSONEqual(t, r.Result, []byte(fmt.Sprintf(`{"n":%d}`, i))) {
			t.Fatalf("%s: follow-up call answered with %s", tc.name, body)
		}
	}
	select {
	case <-conn.Done():
		t.Fatalf("connection closed: %v", conn.Err())
	default:
	}
}

func TestStreamFatalFraming(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		msg  string
	}{
		{"garbage header", "hello world\r\n\r\n", `header line "hello world" has no colon`},
		{"missing content-length", "Content-Type: application/json\r\n\r\n{}", "missing Content-Length header"},
		{"non-numeric length", "Content-Length: abc\r\n\r\n", `invalid Content-Length "abc"`},
		{"negative length", "Content-Length: -5\r\n\r\n", "invalid Content-Length"},
		{"signed length", "Content-Length: +5\r\n\r\nhello", "invalid Content-Length"},
		{"empty length", "Content-Length:\r\n\r\n", "invalid Content-Length"},
		{"overflowing length", "Content-Length: 99999999999999999999\r\n\r\n", "invalid Content-Length"},
		{"conflicting lengths", "Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}", "conflicting Content-Length headers 2 and 3"},
		{"long header line", "X-Pad: " + strings.Repeat("a", 9000) + "\r\n\r\n", "message header exceeds 8192 bytes"},
		{"many header lines", strings.Repeat("X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 300) + "Content-Length: 2\r\n\r\n{}", "message header exceeds 8192 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cli, rd, conn := stStartServer(t, 1024, stEchoHandler)
			wrote := make(chan error, 1)
			go func() {
				_, err := io.WriteString(cli, tc.raw)
				wrote <- err
			}()

			body, err := stReadFrame(rd)
			if err != nil {
				t.Fatalf("reading the answer: %v", err)
			}
			r, err := stParseResp(body)
			if err != nil {
				t.Fatal(err)
			}
			if string(r.ID) != "null" || r.Error == nil || r.Error.Code != jsonrpc2.ParseError || !strings.Contains(r.Error.Message, tc.msg) {
				t.Fatalf("answer %s, want a ParseError with id null containing %q", body, tc.msg)
			}

			if b, err := stReadFrame(rd); !errors.Is(err, io.EOF) {
				t.Fatalf("after a framing error got %q, %v; want the connection closed", b, err)
			}
			stWaitDone(t, conn)
			if err := conn.Err(); !errors.Is(err, ErrFraming) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("conn.Err() = %v, want an ErrFraming error containing %q", err, tc.msg)
			}
			select {
			case <-wrote: // done or failed on the closed pipe: either is fine
			case <-time.After(stDeadline):
				t.Fatal("client write still blocked after the connection closed")
			}
		})
	}
}

func TestStreamReadEndOfStream(t *testing.T) {
	valid := stFrame(`{"jsonrpc":"2.0","method":"note"}`)
	tests := []struct {
		name     string
		in       string
		messages int
		fatal    string // "" means a clean io.EOF
	}{
		{name: "empty stream"},
		{name: "after a message", in: valid, messages: 1},
		{name: "trailing blank lines", in: valid + "\r\n\n", messages: 1},
		{name: "inside the header", in: valid + "Content-Length: 5\r\n", messages: 1, fatal: "stream ended inside a message header"},
		{name: "inside a header line", in: "Content-Len", fatal: "stream ended inside a message header"},
		{name: "inside the body", in: "Content-Length: 50\r\n\r\n{}", fatal: "stream ended inside a 50-byte message body"},
		{name: "inside a skipped body", in: "Content-Length: 5000\r\n\r\n{}", fatal: "stream ended inside a 5000-byte message body"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &stMemConn{r: strings.NewReader(tc.in)}
			s := NewStream(c, 1024)
			for i := 0; i < tc.messages; i++ {
				if _, _, err := s.Read(context.Background()); err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			msg, _, err := s.Read(context.Background())
			frames, perr := stParseFrames(c.written())
			if perr != nil {
				t.Fatalf("written output: %v", perr)
			}
			if tc.fatal == "" {
				if err != io.EOF || msg != nil || len(frames) != 0 {
					t.Fatalf("got %v, %v and %d responses; want io.EOF and nothing written", msg, err, len(frames))
				}
				return
			}
			if !errors.Is(err, ErrFraming) || !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), tc.fatal) {
				t.Fatalf("got %v, want an ErrFraming, io.ErrUnexpectedEOF error containing %q", err, tc.fatal)
			}
			if len(frames) != 1 {
				t.Fatalf("wrote %d responses, want 1", len(frames))
			}
			r, perr := stParseResp(frames[0])
			if perr != nil || r.Error == nil || r.Error.Code != jsonrpc2.ParseError || !strings.Contains(r.Error.Message, tc.fatal) {
				t.Fatalf("answer %s (%v), want a ParseError containing %q", frames[0], perr, tc.fatal)
			}
		})
	}
}

// stZeros is an endless reader of zero bytes.
type stZeros struct{}

func (stZeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestStreamOversizeIsDiscardedNotBuffered(t *testing.T) {
	const size = 20000000
	next := stFrame(`{"jsonrpc":"2.0","id":1,"method":"after"}`)
	c := &stMemConn{r: io.MultiReader(
		strings.NewReader(fmt.Sprintf("Content-Length: %d\r\n\r\n", size)),
		io.LimitReader(stZeros{}, size),
		strings.NewReader(next),
	)}
	s := NewStream(c, 0)

	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	msg, n, err := s.Read(context.Background())
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatalf("read after an oversized message: %v", err)
	}
	if call, ok := msg.(*jsonrpc2.Call); !ok || call.Method() != "after" {
		t.Fatalf("got %#v, want the call that follows the oversized message", msg)
	}
	if want := int64(len("Content-Length: 20000000\r\n\r\n") + size + len(next)); n != want {
		t.Errorf("read %d bytes, want %d", n, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("skipping a %d-byte message allocated %d bytes", size, alloc)
	}

	frames, err := stParseFrames(c.written())
	if err != nil || len(frames) != 1 {
		t.Fatalf("wrote %d responses (%v), want 1", len(frames), err)
	}
	want := `{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"message of 20000000 bytes exceeds the 16777216-byte limit; send smaller requests"}}`
	if string(frames[0]) != want {
		t.Fatalf("answer\n%s\nwant\n%s", frames[0], want)
	}
}

func TestStreamReadValidates(t *testing.T) {
	type check func(t *testing.T, msg jsonrpc2.Message)
	call := func(id jsonrpc2.ID, method, params string) check {
		return func(t *testing.T, msg jsonrpc2.Message) {
			c, ok := msg.(*jsonrpc2.Call)
			if !ok {
				t.Fatalf("got %T, want *jsonrpc2.Call", msg)
			}
			if c.ID() != id || c.Method() != method || string(c.Params()) != params {
				t.Fatalf("got call %q %q %s, want %q %q %s", c.ID(), c.Method(), c.Params(), id, method, params)
			}
		}
	}
	response := func(id jsonrpc2.ID, result string, code jsonrpc2.Code, msg string) check {
		return func(t *testing.T, m jsonrpc2.Message) {
			r, ok := m.(*jsonrpc2.Response)
			if !ok {
				t.Fatalf("got %T, want *jsonrpc2.Response", m)
			}
			if r.ID() != id {
				t.Fatalf("response id %q, want %q", r.ID(), id)
			}
			var rpcErr *jsonrpc2.Error
			switch {
			case code == 0 && r.Err() != nil,
				code == 0 && result == "" && len(r.Result()) != 0,
				code == 0 && result != "" && !stJSONEqual(t, r.Result(), []byte(result)):
				t.Fatalf("response %s / %v, want result %s", r.Result(), r.Err(), result)
			case code != 0 && (!errors.As(r.Err(), &rpcErr) || rpcErr.Code != code || !strings.Contains(rpcErr.Message, msg)):
				t.Fatalf("response error %v, want code %d containing %q", r.Err(), code, msg)
			}
		}
	}

	tests := []struct {
		name  string
		body  string
		check check // nil: the message is dropped without an answer
	}{
		{"string id stays a string", `{"jsonrpc":"2.0","id":"123","method":"m"}`, call(jsonrpc2.NewStringID("123"), "m", "")},
		{"negative zero id", `{"jsonrpc":"2.0","id":-0,"method":"m"}`, call(jsonrpc2.NewNumberID(0), "m", "")},
		{"largest id", `{"jsonrpc":"2.0","id":2147483647,"method":"m"}`, call(jsonrpc2.NewNumberID(2147483647), "m", "")},
		{"smallest id", `{"jsonrpc":"2.0","id":-2147483648,"method":"m"}`, call(jsonrpc2.NewNumberID(-2147483648), "m", "")},
		{"params bytes unchanged", `{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":"<&>","b":[1,2]}}`, call(jsonrpc2.NewNumberID(1), "m", `{"a":"<&>","b":[1,2]}`)},
		{"params null is absent", `{"jsonrpc":"2.0","id":1,"method":"m","params":null}`, call(jsonrpc2.NewNumberID(1), "m", "")},
		{"exact member names only", `{"jsonrpc":"2.0","id":1,"method":"a","Method":"b","ID":99999999999}`, call(jsonrpc2.NewNumberID(1), "a", "")},
		{"notification", `{"jsonrpc":"2.0","method":"n","params":[1]}`, func(t *testing.T, msg jsonrpc2.Message) {
			n, ok := msg.(*jsonrpc2.Notification)
			if !ok || n.Method() != "n" || string(n.Params()) != "[1]" {
				t.Fatalf("got %#v, want notification n [1]", msg)
			}
		}},
		{"response", `{"jsonrpc":"2.0","id":5,"result":{"ok":true}}`, response(jsonrpc2.NewNumberID(5), `{"ok":true}`, 0, "")},
		{"response with string id", `{"jsonrpc":"2.0","id":"abc","result":null}`, response(jsonrpc2.NewStringID("abc"), "", 0, "")},
		{"response with null error", `{"jsonrpc":"2.0","id":5,"result":3,"error":null}`, response(jsonrpc2.NewNumberID(5), "3", 0, "")},
		{"error response", `{"jsonrpc":"2.0","id":5,"error":{"code":-32601,"message":"nope","data":{"x":1}}}`, response(jsonrpc2.NewNumberID(5), "", jsonrpc2.MethodNotFound, "nope")},
		{"response jsonrpc 1.0", `{"jsonrpc":"1.0","id":5,"result":1}`, response(jsonrpc2.NewNumberID(5), "", jsonrpc2.InvalidRequest, `malformed response from peer: jsonrpc is "1.0"`)},
		{"response error not an object", `{"jsonrpc":"2.0","id":5,"error":"boom"}`, response(jsonrpc2.NewNumberID(5), "", jsonrpc2.InvalidRequest, "error must be an object, not a string")},
		{"response error code fractional", `{"jsonrpc":"2.0","id":5,"error":{"code":1.5,"message":"m"}}`, response(jsonrpc2.NewNumberID(5), "", jsonrpc2.InvalidRequest, "error code")},
		{"response error message number", `{"jsonrpc":"2.0","id":5,"error":{"code":1,"message":2}}`, response(jsonrpc2.NewNumberID(5), "", jsonrpc2.InvalidRequest, "error message must be a string")},
		{"response with null id", `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}`, nil},
		{"response without id", `{"jsonrpc":"2.0","result":1}`, nil},
		{"response with unusable id", `{"jsonrpc":"2.0","id":1.5,"result":1}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &stMemConn{r: strings.NewReader(stFrame(tc.body))}
			msg, _, err := NewStream(c, 1024).Read(context.Background())
			if len(c.written()) != 0 {
				t.Fatalf("wrote %q, want nothing", c.written())
			}
			if tc.check == nil {
				if err != io.EOF {
					t.Fatalf("got %#v, %v; want the message dropped, then io.EOF", msg, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			tc.check(t, msg)
		})
	}
}

func TestStreamWriteFraming(t *testing.T) {
	c := &stMemConn{r: strings.NewReader("")}
	s := NewStream(c, 0)
	call, err := jsonrpc2.NewCall(jsonrpc2.NewNumberID(3), "m", map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.Write(context.Background(), call)
	if err != nil {
		t.Fatal(err)
	}
	out := c.written()
	if int(n) != len(out) {
		t.Errorf("Write returned %d, wrote %d bytes", n, len(out))
	}
	body := `{"jsonrpc":"2.0","method":"m","params":{"k":"v"},"id":3}`
	if want := "Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body; string(out) != want {
		t.Fatalf("wrote %q, want %q", out, want)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Write(ctx, call); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write with a cancelled context returned %v", err)
	}
}

func TestWriteErrorResponse(t *testing.T) {
	for _, tc := range []struct {
		id   json.RawMessage
		want string
	}{
		{nil, `null`},
		{json.RawMessage(`7`), `7`},
		{json.RawMessage(`"a"`), `"a"`},
		{json.RawMessage(`{bad`), `null`},
	} {
		var buf bytes.Buffer
		if err := WriteErrorResponse(&buf, tc.id, jsonrpc2.InvalidParams, "bad <params>"); err != nil {
			t.Fatal(err)
		}
		body := `{"jsonrpc":"2.0","id":` + tc.want + `,"error":{"code":-32602,"message":"bad <params>"}}`
		if want := stFrame(body); buf.String() != want {
			t.Errorf("id %s: wrote %q, want %q", tc.id, buf.String(), want)
		}
	}
}

// TestStreamConcurrentWrites checks that error responses written by the read
// goroutine never interleave with replies written by handler goroutines.
func TestStreamConcurrentWrites(t *testing.T) {
	const pairs = 200
	var handlers sync.WaitGroup
	t.Cleanup(handlers.Wait)
	cli, rd, _ := stStartServer(t, 1024, func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			_ = stEchoHandler(ctx, reply, req)
		}()
		return nil
	})

	wrote := make(chan error, 1)
	go func() {
		var err error
		for i := 0; i < pairs && err == nil; i++ {
			_, err = io.WriteString(cli, stFrame(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"echo","params":[%d]}`, i, i))+
				stFrame(`{"jsonrpc":"2.0","id":`))
		}
		wrote <- err
	}()

	seen := make(map[string]bool)
	parseErrors := 0
	for i := 0; i < 2*pairs; i++ {
		body, err := stReadFrame(rd)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		r, err := stParseResp(body)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		if r.Error != nil {
			if r.Error.Code != jsonrpc2.ParseError || string(r.ID) != "null" {
				t.Fatalf("unexpected error response %s", body)
			}
			parseErrors++
			continue
		}
		if !stJSONEqual(t, r.Result, []byte("["+string(r.ID)+"]")) || seen[string(r.ID)] {
			t.Fatalf("unexpected response %s", body)
		}
		seen[string(r.ID)] = true
	}
	if parseErrors != pairs || len(seen) != pairs {
		t.Fatalf("got %d parse errors and %d results, want %d of each", parseErrors, len(seen), pairs)
	}
	select {
	case err := <-wrote:
		if err != nil {
			t.Fatalf("writing: %v", err)
		}
	case <-time.After(stDeadline):
		t.Fatal("writer did not finish")
	}
}
