package providers

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// claude runs Claude Code headless:
//
//	claude -p --output-format stream-json --verbose [flags] -- PROMPT
//
// and reads its stream-json lines.
type claude struct{}

func init() { Register(claude{}) }

func (claude) Name() string { return "claude" }

func (claude) Install() string {
	return "install Claude Code: npm install -g @anthropic-ai/claude-code"
}

// CanResume is true: a follow-up continues the vendor session with --resume.
func (claude) CanResume() bool { return true }

// claudePermissionModes are the permission_mode values the claude provider
// passes to --permission-mode.
var claudePermissionModes = []string{"default", "acceptEdits", "plan", "bypassPermissions"}

// Command builds the argv. The prompt goes last, after "--": Claude Code's
// option parser takes a prompt that starts with "-" for an unknown option,
// and --allowedTools is variadic (it would swallow a positional after it).
func (c claude) Command(spec Spec, t Task) ([]string, []string, error) {
	mode := spec.PermissionMode
	if mode != "" && !slices.Contains(claudePermissionModes, mode) {
		return nil, nil, fmt.Errorf("agent %q: permission_mode %q is not valid for claude (allowed: %s)",
			spec.Name, mode, strings.Join(claudePermissionModes, ", "))
	}
	if t.ReadOnly {
		mode = "plan"
	}
	name := spec.Binary
	if name == "" {
		name = "claude"
	}
	exe, err := LookPath(name, t.Worktree, c.Install())
	if err != nil {
		return nil, nil, err
	}
	model := t.Model
	if model == "" {
		model = spec.Model
	}
	turns := t.MaxTurns
	if turns <= 0 {
		turns = spec.MaxTurns
	}
	argv := []string{exe, "-p", "--output-format", "stream-json", "--verbose"}
	if model != "" {
		argv = append(argv, "--model", model)
	}
	if turns > 0 {
		argv = append(argv, "--max-turns", strconv.Itoa(turns))
	}
	if mode != "" {
		argv = append(argv, "--permission-mode", mode)
	}
	if t.Resume != "" {
		argv = append(argv, "--resume", t.Resume)
	}
	var tools []string
	for _, tool := range t.AllowTools {
		if tool = strings.TrimSpace(tool); tool != "" {
			tools = append(tools, tool)
		}
	}
	if len(tools) > 0 {
		// One element, comma separated: a rule such as "Bash(git *)"
		// contains a space, never a comma.
		argv = append(argv, "--allowedTools", strings.Join(tools, ","))
	}
	et := t
	et.Model = model
	for _, a := range spec.Args {
		argv = append(argv, Expand(a, et))
	}
	argv = append(argv, "--", t.Prompt)

	env := EnvList(spec.Env)
	if _, set := spec.Env["IS_SANDBOX"]; mode == "bypassPermissions" && !set && os.Geteuid() == 0 {
		// Claude Code refuses bypassPermissions as root unless told it
		// runs in a sandbox.
		env = append(env, "IS_SANDBOX=1")
		sort.Strings(env)
	}
	return argv, env, nil
}

func (claude) NewParser() Parser {
	return &claudeParser{
		counted: map[string]bool{},
		tools:   map[string]claudeTool{},
		denied:  map[string]bool{},
		asked:   map[string]bool{},
	}
}

// claudeParser reads Claude Code's stream-json output.
type claudeParser struct {
	session string
	// counted holds the assistant message ids whose usage was reported:
	// Claude Code prints one assistant line per content block, each with
	// the whole message's usage.
	counted map[string]bool
	// tools holds the tool calls by tool_use id, to name their results.
	tools map[string]claudeTool
	// denied holds tool_use ids a system/permission_denied line refused.
	denied map[string]bool
	// asked holds tool_use ids that already produced a question.
	asked map[string]bool
}

type claudeTool struct {
	name, kind, path, command string
}

func (p *claudeParser) Line(stream string, line []byte) []Event {
	if strings.TrimSpace(string(line)) == "" {
		return nil
	}
	if stream != "stdout" {
		return []Event{cliOutputEvent(stream, string(line))}
	}
	j, ok := parseStreamJSON(line)
	if !ok {
		return []Event{cliOutputEvent(stream, string(line))}
	}
	switch j.Get("type").Str() {
	case "system":
		return p.system(j, line)
	case "assistant":
		return p.assistant(j)
	case "user":
		return p.user(j)
	case "result":
		return p.result(j)
	case "stream_event":
		// Partial messages (--include-partial-messages): the complete
		// assistant line follows.
		return nil
	}
	return []Event{cliRawEvent(line)}
}

func (p *claudeParser) system(j streamJSON, line []byte) []Event {
	switch j.Get("subtype").Str() {
	case "init":
		p.session = j.Get("session_id").Str()
		return []Event{{Time: time.Now(), Kind: KindSession, SessionID: p.session, Text: j.Get("model").Str()}}
	case "status":
		return nil
	case "permission_denied":
		// Newer versions announce the refusal before the tool result;
		// the result line carries the question.
		if id := j.Get("tool_use_id").Str(); id != "" {
			p.denied[id] = true
		}
		return nil
	case "api_retry":
		what := j.Get("error").Str()
		if st := streamInt(j.Get("error_status")); st != 0 {
			what = strings.TrimSpace(fmt.Sprintf("%d %s", st, what))
		}
		if what == "" {
			what = "error"
		}
		text := fmt.Sprintf("API %s, retrying (attempt %d of %d)", what,
			j.Get("attempt").Int(), j.Get("max_retries").Int())
		return []Event{cliOutputEvent("stdout", text)}
	}
	return []Event{cliRawEvent(line)}
}

func (p *claudeParser) assistant(j streamJSON) []Event {
	msg := j.Get("message")
	var evs []Event
	for _, b := range msg.Get("content").Arr() {
		switch b.Get("type").Str() {
		case "text":
			if text := b.Get("text").Str(); strings.TrimSpace(text) != "" {
				evs = append(evs, Event{Time: time.Now(), Kind: KindText, Text: text})
			}
		case "tool_use", "server_tool_use":
			evs = append(evs, p.toolUse(b)...)
		}
	}
	id := msg.Get("id").Str()
	if u := msg.Get("usage"); u.IsObject() && (id == "" || !p.counted[id]) {
		if id != "" {
			p.counted[id] = true
		}
		usage := claudeUsage(u)
		if usage != (Usage{}) {
			evs = append(evs, Event{Time: time.Now(), Kind: KindUsage, Usage: &usage})
		}
	}
	return evs
}

func (p *claudeParser) toolUse(b streamJSON) []Event {
	name := b.Get("name").Str()
	in := b.Get("input")
	tool := claudeTool{name: name, kind: claudeToolKind(name), command: in.Get("command").Str()}
	for _, k := range []string{"file_path", "path", "notebook_path"} {
		if s := in.Get(k).Str(); s != "" {
			tool.path = s
			break
		}
	}
	id := b.Get("id").Str()
	if id != "" {
		p.tools[id] = tool
	}
	evs := []Event{{Time: time.Now(), Kind: KindToolCall, Tool: name, ToolKind: tool.kind, Path: tool.path, Command: tool.command}}
	if name == "AskUserQuestion" {
		for _, q := range in.Get("questions").Arr() {
			if text := claudeQuestionText(q); text != "" {
				evs = append(evs, Event{Time: time.Now(), Kind: KindQuestion, Tool: name, Text: text})
			}
		}
		if id != "" {
			p.asked[id] = true
		}
	}
	return evs
}

func claudeQuestionText(q streamJSON) string {
	text := strings.TrimSpace(q.Get("question").Str())
	if text == "" {
		return ""
	}
	var labels []string
	for _, o := range q.Get("options").Arr() {
		if l := o.Get("label").Str(); l != "" {
			labels = append(labels, l)
		}
	}
	if len(labels) > 0 {
		text += " (" + strings.Join(labels, " / ") + ")"
	}
	return text
}

func claudeToolKind(name string) string {
	switch name {
	case "Edit", "MultiEdit", "NotebookEdit":
		return "edit"
	case "Write":
		return "write"
	case "Bash":
		return "command"
	case "Read", "Glob", "Grep", "LS":
		return "read"
	}
	return "other"
}

// claudeDeniedPhrases are what a tool result says when Claude Code did not
// run the tool because it lacked permission.
var claudeDeniedPhrases = []string{
	// "Claude requested permissions to write to X, but you haven't granted it yet."
	"requested permission",
	"haven't granted",
	"not been granted",
	// Bash refused in acceptEdits mode: "This command requires approval".
	"requires approval",
	// A person refused: "The user doesn't want to proceed with this tool use."
	"doesn't want to proceed",
	"tool use was rejected",
}

func (p *claudeParser) user(j streamJSON) []Event {
	rejected := map[string]bool{}
	for _, m := range j.Get("tool_result_meta").Arr() {
		if m.Get("permission_decision", "decision").Str() == "reject" {
			rejected[m.Get("id").Str()] = true
		}
	}
	var evs []Event
	for _, b := range j.Get("message", "content").Arr() {
		if b.Get("type").Str() != "tool_result" {
			continue
		}
		id := b.Get("tool_use_id").Str()
		tool := p.tools[id]
		text := claudeResultText(b.Get("content"))
		isErr := b.Get("is_error").Bool()
		status := "ok"
		switch {
		case p.denied[id] || rejected[id] || (isErr && claudeDenied(text)):
			status = "denied"
		case isErr:
			status = "error"
		}
		evs = append(evs, Event{
			Time: time.Now(), Kind: KindToolResult, Tool: tool.name, ToolKind: tool.kind,
			Path: tool.path, Command: tool.command, Status: status, Text: eventSnippet(text), IsError: isErr,
		})
	}
	return evs
}

func claudeDenied(text string) bool {
	lower := strings.ToLower(text)
	for _, s := range claudeDeniedPhrases {
		if strings.Contains(lower, s) {
			return true
		}
	}
	return false
}

// claudeResultText is a tool result's content: a string or a list of blocks.
func claudeResultText(c streamJSON) string {
	if s := c.Str(); s != "" {
		return s
	}
	var parts []string
	for _, b := range c.Arr() {
		if s := b.Get("text").Str(); s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, "\n")
}

func (p *claudeParser) result(j streamJSON) []Event {
	var evs []Event
	if sid := j.Get("session_id").Str(); sid != "" && sid != p.session {
		p.session = sid
		evs = append(evs, Event{Time: time.Now(), Kind: KindSession, SessionID: sid})
	}
	for _, d := range j.Get("permission_denials").Arr() {
		id := d.Get("tool_use_id").Str()
		if id != "" && p.asked[id] {
			continue
		}
		if id != "" {
			p.asked[id] = true
		}
		name := d.Get("tool_name").Str()
		in := d.Get("tool_input")
		q := Event{Time: time.Now(), Kind: KindQuestion, Tool: name, Command: in.Get("command").Str()}
		for _, k := range []string{"file_path", "path", "notebook_path"} {
			if s := in.Get(k).Str(); s != "" {
				q.Path = s
				break
			}
		}
		q.Text = claudeDenialText(name, q.Path, q.Command)
		evs = append(evs, q)
	}

	subtype := j.Get("subtype").Str()
	text := j.Get("result").Str()
	if text == "" {
		var errs []string
		for _, e := range j.Get("errors").Arr() {
			if s := e.Str(); s != "" {
				errs = append(errs, s)
			} else if s := e.Get("message").Str(); s != "" {
				errs = append(errs, s)
			}
		}
		text = strings.Join(errs, "; ")
	}
	isErr := j.Get("is_error").Bool() || strings.HasPrefix(subtype, "error")
	res := Event{
		Time: time.Now(), Kind: KindResult, Text: text, Turns: int(j.Get("num_turns").Int()),
		SessionID: p.session, IsError: isErr,
		ErrorKind: claudeErrorKind(subtype, isErr, streamInt(j.Get("api_error_status")), text),
	}
	if u := j.Get("usage"); u.IsObject() || j.Get("total_cost_usd").Num() != 0 {
		usage := claudeUsage(u)
		usage.CostUSD = j.Get("total_cost_usd").Num()
		res.Usage = &usage
	}
	return append(evs, res)
}

func claudeDenialText(tool, path, command string) string {
	if tool == "" {
		tool = "a tool"
	}
	switch {
	case command != "":
		return fmt.Sprintf("Claude wanted to use %s to run `%s` but was not allowed", tool, eventSnippet(command))
	case path != "":
		return fmt.Sprintf("Claude wanted to use %s on %s but was not allowed", tool, path)
	}
	return fmt.Sprintf("Claude wanted to use %s but was not allowed", tool)
}

func claudeErrorKind(subtype string, isErr bool, apiStatus int64, text string) string {
	lower := strings.ToLower(text)
	switch {
	case subtype == "error_max_turns":
		return ErrorMaxTurns
	case subtype == "error_max_budget_usd", isErr && strings.Contains(lower, "credit balance is too low"):
		return ErrorBudget
	case !isErr:
		return ""
	case apiStatus == 401 || apiStatus == 403,
		strings.Contains(lower, "invalid api key"), strings.Contains(lower, "authentication_error"),
		strings.Contains(lower, "/login"):
		return ErrorAuth
	case apiStatus != 0, strings.HasPrefix(lower, "api error"):
		return ErrorAPI
	}
	return ErrorOther
}

func claudeUsage(u streamJSON) Usage {
	return Usage{
		InputTokens:      u.Get("input_tokens").Int(),
		OutputTokens:     u.Get("output_tokens").Int(),
		CacheReadTokens:  u.Get("cache_read_input_tokens").Int(),
		CacheWriteTokens: u.Get("cache_creation_input_tokens").Int(),
	}
}

// Helpers shared by the claude and codex parsers.

// streamJSON is a decoded JSON value read leniently: a missing key or a
// value of another type reads as the zero value, never a panic.
type streamJSON struct{ v any }

// parseStreamJSON decodes a line that holds one JSON object.
func parseStreamJSON(line []byte) (streamJSON, bool) {
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil || m == nil {
		return streamJSON{}, false
	}
	return streamJSON{m}, true
}

// Get follows keys through nested objects.
func (j streamJSON) Get(keys ...string) streamJSON {
	v := j.v
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return streamJSON{}
		}
		v = m[k]
	}
	return streamJSON{v}
}

func (j streamJSON) Str() string { s, _ := j.v.(string); return s }

func (j streamJSON) Num() float64 {
	f, ok := j.v.(float64)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}

// Int is the number truncated to an int64, clamped to ±2^53.
func (j streamJSON) Int() int64 {
	const limit = 1 << 53
	return int64(math.Max(-limit, math.Min(limit, j.Num())))
}

func (j streamJSON) Bool() bool { b, _ := j.v.(bool); return b }

func (j streamJSON) IsObject() bool { _, ok := j.v.(map[string]any); return ok }

func (j streamJSON) Arr() []streamJSON {
	a, _ := j.v.([]any)
	out := make([]streamJSON, len(a))
	for i, v := range a {
		out[i] = streamJSON{v}
	}
	return out
}

// streamInt reads a number, or a string holding one ("529").
func streamInt(j streamJSON) int64 {
	if n, err := strconv.ParseInt(strings.TrimSpace(j.Str()), 10, 64); err == nil {
		return n
	}
	return j.Int()
}

func cliOutputEvent(stream, text string) Event {
	return Event{Time: time.Now(), Kind: KindOutput, Stream: stream, Text: text}
}

func cliRawEvent(line []byte) Event {
	return Event{Time: time.Now(), Kind: KindRaw, Raw: string(line)}
}

// eventSnippet is the first non-blank line of s, at most 200 characters.
func eventSnippet(s string) string {
	for l := range strings.SplitSeq(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return truncateRunes(l, 200)
		}
	}
	return ""
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
