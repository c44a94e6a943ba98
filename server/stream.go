package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"go.lsp.dev/jsonrpc2"
)

// DefaultMaxMessage is the largest message body accepted (16 MiB).
const DefaultMaxMessage = 16 << 20

// maxHeaderBytes bounds the header block of one message, blank lines before it included.
const maxHeaderBytes = 8 << 10

// ErrFraming is wrapped by the errors Read returns when the peer broke the
// Content-Length framing: the stream cannot find the next message, so the
// connection has to end.
var ErrFraming = errors.New("lsp framing error")

// lspStream is a jsonrpc2.Stream speaking LSP framing that survives bad messages.
type lspStream struct {
	rwc io.ReadWriteCloser
	max int64

	// in is used only by Read, which jsonrpc2.Conn calls from a single goroutine.
	in *bufio.Reader

	// guards writes to rwc: Write and the error responses Read sends from the
	// read goroutine must not interleave their frames.
	writeMu sync.Mutex
}

// NewStream returns a jsonrpc2.Stream speaking LSP framing (Content-Length headers) over rwc.
// Messages whose body exceeds max bytes are skipped (the body is read and discarded, never buffered whole) and answered with an error response; malformed messages are answered with an error response; in both cases the stream keeps reading the next frame, so one bad message never closes the connection.
//
// A max of zero or less means DefaultMaxMessage. Only a broken header block
// (no usable Content-Length, a line without a colon, more than 8 KiB of
// headers, the stream ending inside a frame) ends the connection: Read then
// answers with a ParseError and returns an error wrapping ErrFraming. The
// end of the stream between two messages is returned as io.EOF.
//
// Every message Read returns has been validated as JSON-RPC 2.0 and
// re-encoded with exactly the members jsonrpc2 reads, so jsonrpc2.DecodeMessage
// never fails on it. Invalid responses (messages with a result or an error
// and no method) are never answered, so two such streams cannot ping-pong
// error responses: one whose id is usable is handed on as an error response
// for that id (the pending call fails instead of waiting forever), any other
// is dropped.
func NewStream(rwc io.ReadWriteCloser, max int) jsonrpc2.Stream {
	if max <= 0 {
		max = DefaultMaxMessage
	}
	return &lspStream{
		rwc: rwc,
		max: int64(max),
		in:  bufio.NewReaderSize(rwc, 16<<10),
	}
}

// Read implements jsonrpc2.Stream. It returns the next valid message,
// answering and skipping the invalid ones before it.
func (s *lspStream) Read(ctx context.Context) (jsonrpc2.Message, int64, error) {
	var total int64
	for {
		select {
		case <-ctx.Done():
			return nil, total, fmt.Errorf("reading message: %w", ctx.Err())
		default:
		}

		length, n, err := s.readHeader()
		total += n
		if err != nil {
			return nil, total, err
		}

		if length > s.max {
			n, err := io.CopyN(io.Discard, s.in, length)
			total += n
			if err != nil {
				return nil, total, s.bodyError(length, err)
			}
			msg := fmt.Sprintf("message of %d bytes exceeds the %d-byte limit; send smaller requests", length, s.max)
			if err := s.replyError(nil, jsonrpc2.InvalidRequest, msg); err != nil {
				return nil, total, err
			}
			continue
		}

		body := make([]byte, length)
		if _, err := io.ReadFull(s.in, body); err != nil {
			return nil, total, s.bodyError(length, err)
		}
		total += length

		msg, rej := validateBody(body)
		if rej == nil {
			return msg, total, nil
		}
		if rej.silent {
			continue
		}
		if err := s.replyError(rej.id, rej.code, rej.msg); err != nil {
			return nil, total, err
		}
	}
}

// readHeader reads one header block and returns the body length it declares
// and the number of bytes read.
func (s *lspStream) readHeader() (length, n int64, err error) {
	length = -1
	sawHeader := false
	for {
		line, err := s.in.ReadSlice('\n')
		n += int64(len(line))
		if n > maxHeaderBytes || errors.Is(err, bufio.ErrBufferFull) {
			return 0, n, s.framingError(fmt.Sprintf("message header exceeds %d bytes", maxHeaderBytes), nil)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if !sawHeader && len(bytes.TrimSpace(line)) == 0 {
					return 0, n, io.EOF // clean end between messages
				}
				return 0, n, s.framingError("stream ended inside a message header", io.ErrUnexpectedEOF)
			}
			return 0, n, fmt.Errorf("reading message header: %w", err)
		}

		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		if len(line) == 0 {
			if !sawHeader {
				continue // tolerate blank lines between messages
			}
			break
		}
		sawHeader = true

		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			return 0, n, s.framingError(fmt.Sprintf("header line %s has no colon", quoteClipped(line)), nil)
		}
		name := bytes.TrimSpace(line[:colon])
		if !strings.EqualFold(string(name), jsonrpc2.HdrContentLength) {
			continue // Content-Type and unknown headers are ignored
		}
		value := bytes.TrimSpace(line[colon+1:])
		v, ok := parseContentLength(value)
		if !ok {
			return 0, n, s.framingError(fmt.Sprintf("invalid Content-Length %s", quoteClipped(value)), nil)
		}
		if length >= 0 && v != length {
			return 0, n, s.framingError(fmt.Sprintf("conflicting Content-Length headers %d and %d", length, v), nil)
		}
		length = v
	}
	if length < 0 {
		return 0, n, s.framingError("missing Content-Length header", nil)
	}
	return length, n, nil
}

// parseContentLength parses a Content-Length value: decimal digits only.
func parseContentLength(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	return v, err == nil
}

// quoteClipped quotes b for an error message, cut to a readable length.
func quoteClipped(b []byte) string {
	const limit = 64
	if len(b) > limit {
		return strconv.Quote(string(b[:limit])) + "..."
	}
	return strconv.Quote(string(b))
}

// framingError tells the peer (best effort) that its framing is broken and
// returns the error that ends the connection.
func (s *lspStream) framingError(problem string, cause error) error {
	_ = s.replyError(nil, jsonrpc2.ParseError, problem+"; cannot find the next message, closing the connection")
	if cause != nil {
		return fmt.Errorf("reading message header: %s: %w: %w", problem, ErrFraming, cause)
	}
	return fmt.Errorf("reading message header: %s: %w", problem, ErrFraming)
}

// bodyError handles a failure to read or skip a message body.
func (s *lspStream) bodyError(length int64, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		problem := fmt.Sprintf("stream ended inside a %d-byte message body", length)
		_ = s.replyError(nil, jsonrpc2.ParseError, problem+"; closing the connection")
		return fmt.Errorf("reading message body: %s: %w: %w", problem, ErrFraming, io.ErrUnexpectedEOF)
	}
	return fmt.Errorf("reading message body: %w", err)
}

// replyError writes an error response from the read side.
func (s *lspStream) replyError(id json.RawMessage, code jsonrpc2.Code, msg string) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	if err := WriteErrorResponse(s.rwc, id, code, msg); err != nil {
		return fmt.Errorf("answering invalid message: %w", err)
	}
	return nil
}

// Write implements jsonrpc2.Stream.
func (s *lspStream) Write(ctx context.Context, msg jsonrpc2.Message) (int64, error) {
	select {
	case <-ctx.Done():
		return 0, fmt.Errorf("writing message: %w", ctx.Err())
	default:
	}
	body, err := marshalNoEscape(msg)
	if err != nil {
		return 0, fmt.Errorf("marshaling message: %w", err)
	}
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	n, err := writeLSPFrame(s.rwc, body)
	if err != nil {
		return n, fmt.Errorf("writing message: %w", err)
	}
	return n, nil
}

// Close implements jsonrpc2.Stream.
func (s *lspStream) Close() error {
	return s.rwc.Close()
}

// marshalNoEscape encodes v as JSON without escaping <, > and &, so the bytes of
// params and results pass through unchanged.
func marshalNoEscape(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeLSPFrame writes body with its Content-Length header in one Write call.
func writeLSPFrame(w io.Writer, body []byte) (int64, error) {
	buf := make([]byte, 0, len(body)+32)
	buf = append(buf, jsonrpc2.HdrContentLength+": "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, jsonrpc2.HdrContentSeparator...)
	buf = append(buf, body...)
	n, err := w.Write(buf)
	return int64(n), err
}

// wireErrorResponse is a JSON-RPC 2.0 error response.
type wireErrorResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"` // nil encodes as null
	Error   wireErrorObject `json:"error"`
}

// wireErrorObject is the error member of a response.
type wireErrorObject struct {
	Code    int32           `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// WriteErrorResponse writes one LSP-framed JSON-RPC 2.0 error response to w.
// id is echoed as is; nil or invalid JSON is sent as null.
func WriteErrorResponse(w io.Writer, id json.RawMessage, code jsonrpc2.Code, msg string) error {
	if len(id) > 0 && !json.Valid(id) {
		id = nil
	}
	body, err := marshalNoEscape(wireErrorResponse{JSONRPC: jsonrpc2.Version, ID: id, Error: wireErrorObject{Code: int32(code), Message: msg}})
	if err != nil {
		return fmt.Errorf("marshaling error response: %w", err)
	}
	if _, err := writeLSPFrame(w, body); err != nil {
		return fmt.Errorf("writing error response: %w", err)
	}
	return nil
}

// msgRejection describes why a message body was refused.
type msgRejection struct {
	id     json.RawMessage // echoed id; nil for null
	code   jsonrpc2.Code
	msg    string
	silent bool // a response: never answered
}

// canonicalMessage holds exactly the members jsonrpc2 decodes, validated.
type canonicalMessage struct {
	JSONRPC string           `json:"jsonrpc"`
	ID      json.RawMessage  `json:"id,omitempty"`
	Method  json.RawMessage  `json:"method,omitempty"`
	Params  json.RawMessage  `json:"params,omitempty"`
	Result  json.RawMessage  `json:"result,omitempty"`
	Error   *wireErrorObject `json:"error,omitempty"`
}

// validateBody validates one message body and decodes it, or says why not.
//
// jsonrpc2.DecodeMessage matches member names case-insensitively, keeps the
// last of duplicate members, and fails the whole connection on an id it
// cannot hold, so the message handed to it is rebuilt from the validated
// members only.
func validateBody(body []byte) (jsonrpc2.Message, *msgRejection) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) || !json.Valid(body) {
			return nil, &msgRejection{code: jsonrpc2.ParseError, msg: fmt.Sprintf("message is not valid JSON: %v", err)}
		}
		kind := jsonValueKind(bytes.TrimSpace(body))
		if kind == "array" {
			return nil, &msgRejection{code: jsonrpc2.InvalidRequest, msg: "batch requests are not supported; send one message per frame"}
		}
		return nil, &msgRejection{code: jsonrpc2.InvalidRequest, msg: "message must be a JSON object, not " + withArticle(kind)}
	}
	if obj == nil {
		return nil, &msgRejection{code: jsonrpc2.InvalidRequest, msg: "message must be a JSON object, not null"}
	}

	idRaw, hasID := obj["id"]
	methodRaw, hasMethod := obj["method"]
	_, hasResult := obj["result"]
	_, hasError := obj["error"]
	if !hasMethod && (hasResult || hasError) {
		return validateResponse(obj)
	}

	var echo json.RawMessage
	if k := jsonValueKind(idRaw); hasID && (k == "string" || k == "number") {
		echo = idRaw
	}
	reject := func(format string, args ...any) (jsonrpc2.Message, *msgRejection) {
		return nil, &msgRejection{id: echo, code: jsonrpc2.InvalidRequest, msg: fmt.Sprintf(format, args...)}
	}

	if !hasMethod {
		if !hasID {
			return reject("message has neither a method nor an id")
		}
		return reject("message has an id but no method, result or error")
	}
	if problem := checkJSONRPCVersion(obj); problem != "" {
		return reject("%s", problem)
	}
	canon := canonicalMessage{JSONRPC: jsonrpc2.Version}
	if hasID {
		id, problem := canonicalRPCID(idRaw)
		if problem != "" {
			return reject("%s", problem)
		}
		canon.ID = id
	}

	var method string
	if k := jsonValueKind(methodRaw); k != "string" {
		return reject("method must be a string, not %s", withArticle(k))
	}
	if err := json.Unmarshal(methodRaw, &method); err != nil {
		return reject("method must be a string: %v", err)
	}
	if method == "" {
		return reject("method must not be empty")
	}
	canon.Method, _ = marshalNoEscape(method)

	if params, ok := obj["params"]; ok {
		switch k := jsonValueKind(params); k {
		case "object", "array":
			canon.Params = params
		case "null":
			// treated as absent, as several clients send it
		default:
			return reject("params must be an object or an array, not %s", withArticle(k))
		}
	}

	msg, err := decodeCanonical(canon)
	if err != nil {
		return reject("message cannot be decoded: %v", err)
	}
	return msg, nil
}

// validateResponse validates a response (a message with a result or an error
// and no method). It is never answered: with a usable id, a malformed
// response is turned into an error response for that id; otherwise it is
// dropped.
func validateResponse(obj map[string]json.RawMessage) (jsonrpc2.Message, *msgRejection) {
	drop := &msgRejection{silent: true}
	idRaw, ok := obj["id"]
	if !ok {
		return nil, drop
	}
	id, problem := canonicalRPCID(idRaw)
	if problem != "" {
		return nil, drop
	}
	canon := canonicalMessage{JSONRPC: jsonrpc2.Version, ID: id}
	if problem := checkJSONRPCVersion(obj); problem != "" {
		return malformedResponse(canon, problem)
	}

	if e, ok := obj["error"]; ok && jsonValueKind(e) != "null" {
		we, problem := parseWireError(e)
		if problem != "" {
			return malformedResponse(canon, problem)
		}
		canon.Error = we
	} else if r, ok := obj["result"]; ok {
		canon.Result = r
	} else {
		canon.Result = json.RawMessage("null")
	}

	msg, err := decodeCanonical(canon)
	if err != nil {
		return malformedResponse(canonicalMessage{JSONRPC: jsonrpc2.Version, ID: id}, fmt.Sprintf("cannot be decoded: %v", err))
	}
	return msg, nil
}

// malformedResponse turns a response that cannot be used into an error
// response for the same id, so the waiting call fails instead of hanging.
func malformedResponse(canon canonicalMessage, problem string) (jsonrpc2.Message, *msgRejection) {
	canon.Result = nil
	canon.Error = &wireErrorObject{Code: int32(jsonrpc2.InvalidRequest), Message: "malformed response from peer: " + problem}
	msg, err := decodeCanonical(canon)
	if err != nil {
		return nil, &msgRejection{silent: true}
	}
	return msg, nil
}

// decodeCanonical encodes canon and hands it to jsonrpc2.
func decodeCanonical(canon canonicalMessage) (jsonrpc2.Message, error) {
	data, err := marshalNoEscape(canon)
	if err != nil {
		return nil, fmt.Errorf("re-encoding message: %w", err)
	}
	msg, err := jsonrpc2.DecodeMessage(data)
	if err != nil {
		return nil, fmt.Errorf("decoding message: %w", err)
	}
	return msg, nil
}

// checkJSONRPCVersion reports what is wrong with the jsonrpc member, or "".
func checkJSONRPCVersion(obj map[string]json.RawMessage) string {
	raw, ok := obj["jsonrpc"]
	if !ok {
		return `message lacks "jsonrpc": "2.0"`
	}
	var v string
	if jsonValueKind(raw) != "string" || json.Unmarshal(raw, &v) != nil || v != jsonrpc2.Version {
		return fmt.Sprintf(`jsonrpc is %s; it must be "2.0"`, clipText(string(raw)))
	}
	return ""
}

// canonicalRPCID validates an id: a non-empty string or an integer that fits
// int32, the only ids jsonrpc2 can hold. It returns the id re-encoded, or
// what is wrong with it.
func canonicalRPCID(raw json.RawMessage) (json.RawMessage, string) {
	const remedy = "use a string or a 32-bit integer id"
	switch k := jsonValueKind(raw); k {
	case "string":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Sprintf("id is not a valid string: %v", err)
		}
		if s == "" {
			return nil, "id must not be an empty string; " + remedy
		}
		b, err := marshalNoEscape(s)
		if err != nil {
			return nil, fmt.Sprintf("id cannot be encoded: %v", err)
		}
		return b, ""
	case "number":
		text := string(raw)
		if strings.ContainsAny(text, ".eE") {
			return nil, fmt.Sprintf("id %s is not an integer; %s", clipText(text), remedy)
		}
		v, err := strconv.ParseInt(text, 10, 32)
		if err != nil {
			return nil, fmt.Sprintf("id %s is out of range; %s", clipText(text), remedy)
		}
		return json.RawMessage(strconv.FormatInt(v, 10)), ""
	default:
		return nil, fmt.Sprintf("id must be a string or a 32-bit integer, not %s", withArticle(k))
	}
}

// parseWireError validates the error member of a response.
func parseWireError(raw json.RawMessage) (*wireErrorObject, string) {
	var obj map[string]json.RawMessage
	if jsonValueKind(raw) != "object" || json.Unmarshal(raw, &obj) != nil {
		return nil, "error must be an object, not " + withArticle(jsonValueKind(raw))
	}
	we := &wireErrorObject{}
	if c, ok := obj["code"]; ok {
		v, err := strconv.ParseInt(string(c), 10, 32)
		if jsonValueKind(c) != "number" || err != nil {
			return nil, fmt.Sprintf("error code %s is not a 32-bit integer", quoteClipped(c))
		}
		we.Code = int32(v)
	}
	if m, ok := obj["message"]; ok {
		if jsonValueKind(m) != "string" || json.Unmarshal(m, &we.Message) != nil {
			return nil, "error message must be a string, not " + withArticle(jsonValueKind(m))
		}
	}
	if d, ok := obj["data"]; ok && jsonValueKind(d) != "null" {
		we.Data = d
	}
	return we, ""
}

// jsonValueKind names the kind of a valid JSON value from its first byte.
func jsonValueKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "boolean"
	case 'n':
		return "null"
	default:
		return "number"
	}
}

// withArticle prefixes a kind with its indefinite article ("an object", "null").
func withArticle(kind string) string {
	switch kind {
	case "null", "nothing":
		return kind
	case "object", "array":
		return "an " + kind
	default:
		return "a " + kind
	}
}

// clipText cuts s for an error message.
func clipText(s string) string {
	const limit = 64
	if len(s) > limit {
		return s[:limit] + "..."
	}
	return s
}
