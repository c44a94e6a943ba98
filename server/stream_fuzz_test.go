package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"go.lsp.dev/jsonrpc2"
)

// stFuzzMax is small so that the fuzzer reaches the oversize path.
const stFuzzMax = 512

var stFuzzBodies = []string{
	``,
	`{}`,
	`[]`,
	`null`,
	`"x"`,
	`{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":[1,2,{"b":null}]}}`,
	`{"jsonrpc":"2.0","method":"note","params":[]}`,
	`{"jsonrpc":"2.0","id":"s","method":"m","params":null}`,
	`{"jsonrpc":"1.0","id":1,"method":"m"}`,
	`{"jsonrpc":"2.0","id":9999999999,"method":"m"}`,
	`{"jsonrpc":"2.0","id":1.5,"method":"m"}`,
	`{"jsonrpc":"2.0","id":{},"method":"m"}`,
	`{"jsonrpc":"2.0","id":1,"method":42}`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":"str"}`,
	`{"jsonrpc":"2.0","id":1,"Method":"m","ID":1e99}`,
	`{"jsonrpc":"2.0","id":1,"result":{"x":1}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"m","data":[1]}}`,
	`{"jsonrpc":"2.0","id":1,"error":{"code":1e40}}`,
	`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"m"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":{"s":"\ud800\u0000` + "\xff" + `"}}`,
	`{"jsonrpc":"2.0","id":1,"method":"m"} trailing`,
	`{"jsonrpc":"2.0","id":1,"method":"m","params":{"pad":"` + strings.Repeat("x", stFuzzMax) + `"}}`,
}

// FuzzStreamRead feeds arbitrary bytes as one properly framed body: Read must
// not panic and must either return a message (writing nothing) or answer
// with exactly one error response and go on to the next frame. The only
// exception is an invalid response (no method, a result or an error), which
// is dropped without an answer.
func FuzzStreamRead(f *testing.F) {
	for _, b := range stFuzzBodies {
		f.Add([]byte(b))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in := append([]byte(fmt.Sprintf("Content-Length: %d\r\n\r\n", len(body))), body...)
		c := &stMemConn{r: bytes.NewReader(in)}
		s := NewStream(c, stFuzzMax)

		msg, n, err := s.Read(context.Background())
		frames, perr := stParseFrames(c.written())
		if perr != nil {
			t.Fatalf("written output %q is not well framed: %v", c.written(), perr)
		}
		if n != int64(len(in)) {
			t.Fatalf("Read counted %d bytes, the input has %d", n, len(in))
		}

		if err == nil {
			if msg == nil {
				t.Fatal("Read returned neither a message nor an error")
			}
			if len(frames) != 0 {
				t.Fatalf("Read returned a message and also wrote %q", frames)
			}
			data, err := json.Marshal(msg)
			if err != nil {
				t.Fatalf("returned message %#v cannot be encoded: %v", msg, err)
			}
			if _, err := jsonrpc2.DecodeMessage(data); err != nil {
				t.Fatalf("returned message re-encoded as %s does not decode: %v", data, err)
			}
			if _, _, err := s.Read(context.Background()); err != io.EOF {
				t.Fatalf("second Read returned %v, want io.EOF", err)
			}
			return
		}

		if err != io.EOF {
			t.Fatalf("Read of a well-framed body failed: %v", err)
		}
		switch len(frames) {
		case 0:
			var obj map[string]json.RawMessage
			if json.Unmarshal(body, &obj) != nil || obj == nil {
				t.Fatalf("body %q was dropped without an answer", body)
			}
			_, hasMethod := obj["method"]
			_, hasResult := obj["result"]
			_, hasError := obj["error"]
			if hasMethod || !(hasResult || hasError) {
				t.Fatalf("body %q is not a response but was dropped without an answer", body)
			}
		case 1:
			r, err := stParseResp(frames[0])
			if err != nil {
				t.Fatal(err)
			}
			if r.Error == nil || (r.Error.Code != jsonrpc2.ParseError && r.Error.Code != jsonrpc2.InvalidRequest) || r.Error.Message == "" {
				t.Fatalf("answer %s is not a ParseError or InvalidRequest", frames[0])
			}
			if len(body) > stFuzzMax && !strings.Contains(r.Error.Message, fmt.Sprintf("exceeds the %d-byte limit", stFuzzMax)) {
				t.Fatalf("oversized body answered with %s", frames[0])
			}
		default:
			t.Fatalf("one body answered %d times: %q", len(frames), frames)
		}
	})
}

// FuzzStreamFrames feeds arbitrary bytes as a whole stream, headers included:
// Read must not panic, must end with io.EOF or a framing error, and must
// write only well-framed error responses.
func FuzzStreamFrames(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("Content-Length: 2\r\n\r\n{}content-length: 0\n\n"))
	f.Add([]byte("Content-Type: x\r\nContent-Length: 2\r\n\r\n[]\r\nContent-Length: 1"))
	f.Add([]byte("Content-Length: 600\r\n\r\n" + strings.Repeat("a", 600)))
	f.Add([]byte("hello\r\n\r\n"))
	for _, b := range stFuzzBodies {
		f.Add([]byte(fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(b), b)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &stMemConn{r: bytes.NewReader(data)}
		s := NewStream(c, stFuzzMax)
		var err error
		for i := 0; err == nil; i++ {
			if i > len(data)+1 {
				t.Fatalf("more messages than input bytes")
			}
			_, _, err = s.Read(context.Background())
		}
		if err != io.EOF && !errors.Is(err, ErrFraming) {
			t.Fatalf("Read ended with %v, want io.EOF or ErrFraming", err)
		}
		frames, perr := stParseFrames(c.written())
		if perr != nil {
			t.Fatalf("written output %q is not well framed: %v", c.written(), perr)
		}
		for _, fr := range frames {
			if r, err := stParseResp(fr); err != nil || r.Error == nil {
				t.Fatalf("wrote %s, want an error response (%v)", fr, err)
			}
		}
	})
}
