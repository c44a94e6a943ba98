package providers

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// codex runs the OpenAI Codex CLI headless:
//
//	codex exec --json -s SANDBOX [-m MODEL] [args] -- PROMPT
//	codex exec --json -s SANDBOX [-m MODEL] [args] resume -- SESSION PROMPT
//
// and reads its JSONL events. Codex has no turn limit flag: the daemon's
// timeout is what bounds a run, so MaxTurns is not passed. It has no
// per-tool allow list either: Task.AllowTools is not passed (a follow-up
// that needs more must use a wider permission_mode).
type codex struct{}

func init() { Register(codex{}) }

func (codex) Name() string { return "codex" }

func (codex) Install() string {
	return "install Codex CLI: npm install -g @openai/codex"
}

// CanResume is true: a follow-up continues the thread with `exec resume`.
func (codex) CanResume() bool { return true }

// codexSandbox maps a permission_mode, ours or codex's own, to --sandbox.
// Unset means workspace-write: codex exec would otherwise run read-only.
func codexSandbox(spec Spec, t Task) (string, error) {
	var sb string
	switch spec.PermissionMode {
	case "", "default", "acceptEdits", "workspace-write":
		sb = "workspace-write"
	case "plan", "read-only":
		sb = "read-only"
	case "bypassPermissions", "danger-full-access":
		sb = "danger-full-access"
	default:
		return "", fmt.Errorf("agent %q: permission_mode %q is not valid for codex (allowed: default, acceptEdits, plan, bypassPermissions, or codex's read-only, workspace-write, danger-full-access)",
			spec.Name, spec.PermissionMode)
	}
	if t.ReadOnly {
		sb = "read-only"
	}
	return sb, nil
}

// Command builds the argv. Every option goes before the `resume`
// subcommand: `codex exec resume` rejects -s (only some options are global
// to exec's subcommands). The positionals follow "--", since codex reads a
// prompt that starts with "-" as options.
func (c codex) Command(spec Spec, t Task) ([]string, []string, error) {
	sandbox, err := codexSandbox(spec, t)
	if err != nil {
		return nil, nil, err
	}
	name := spec.Binary
	if name == "" {
		name = "codex"
	}
	exe, err := LookPath(name, t.Worktree, c.Install())
	if err != nil {
		return nil, nil, err
	}
	model := t.Model
	if model == "" {
		model = spec.Model
	}
	argv := []string{exe, "exec", "--json", "-s", sandbox}
	if model != "" {
		argv = append(argv, "-m", model)
	}
	et := t
	et.Model = model
	for _, a := range spec.Args {
		argv = append(argv, Expand(a, et))
	}
	if t.Resume != "" {
		argv = append(argv, "resume", "--", t.Resume, t.Prompt)
	} else {
		argv = append(argv, "--", t.Prompt)
	}
	return argv, EnvList(spec.Env), nil
}

func (codex) NewParser() Parser { return &codexParser{calls: map[string]bool{}} }

// Configure tells the parser the run's sandbox: without one, a failed
// command is not read as a refusal.
func (p *codexParser) Configure(spec Spec, t Task) {
	sb, err := codexSandbox(spec, t)
	p.noSandbox = err == nil && sb == "danger-full-access"
}

// NewResumedParser returns a parser for a run that resumes a thread whose
// earlier runs reported prior. Codex restores the thread's token count on
// `exec resume`: the first total it reports counts those runs again (a
// resumed run of 100 tokens after one of 200 reports 300). With prior as
// the starting point the usage events are this run's own. The daemon uses
// it for follow-ups and for runs it re-adopts (providers.ResumedParserMaker).
func (codex) NewResumedParser(prior Usage) Parser {
	return &codexParser{calls: map[string]bool{}, total: codexTokens{
		in:     prior.InputTokens + prior.CacheReadTokens + prior.CacheWriteTokens,
		cached: prior.CacheReadTokens,
		write:  prior.CacheWriteTokens,
		out:    prior.OutputTokens,
	}}
}

// codexParser reads `codex exec --json` output.
type codexParser struct {
	// noSandbox is set for danger-full-access runs: a failed command there
	// is a failure, not a sandbox refusal.
	noSandbox bool
	// calls holds the item ids whose tool call was reported (on
	// item.started), so item.completed reports only the result.
	calls map[string]bool
	// turnText is the last agent message (or plan) of the current turn,
	// lastText the last of the run.
	turnText, lastText string
	// total is the last cumulative usage codex reported; run is the sum of
	// the deltas reported so far.
	total codexTokens
	run   Usage
	// lastErr is the message of the last error reported as a result, so
	// the turn.failed that repeats it adds nothing.
	lastErr string
}

func (p *codexParser) Line(stream string, line []byte) []Event {
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
	typ := j.Get("type").Str()
	switch typ {
	case "thread.started":
		return []Event{{Time: time.Now(), Kind: KindSession, SessionID: j.Get("thread_id").Str()}}
	case "turn.started":
		p.turnText, p.lastErr = "", ""
		return nil
	case "item.started":
		return p.itemStarted(j.Get("item"))
	case "item.updated", "item.plan.delta":
		return nil
	case "item.completed":
		return p.itemCompleted(stream, j.Get("item"), line)
	case "turn.completed":
		return p.turnCompleted(j)
	case "turn.failed":
		msg := j.Get("error", "message").Str()
		if msg == "" {
			msg = "turn failed"
		}
		if msg == p.lastErr {
			return nil
		}
		return []Event{codexErrorResult(msg)}
	case "error":
		msg := j.Get("message").Str()
		if strings.HasPrefix(msg, "Reconnecting") {
			// A retry notice (stream error that codex retries), not the end.
			return []Event{cliOutputEvent(stream, msg)}
		}
		if msg == "" {
			msg = "error"
		}
		p.lastErr = msg
		return []Event{codexErrorResult(msg)}
	}
	if strings.Contains(typ, "request_user_input") {
		return codexQuestions(j)
	}
	return []Event{cliRawEvent(line)}
}

func (p *codexParser) itemStarted(item streamJSON) []Event {
	switch item.Get("type").Str() {
	case "command_execution", "file_change", "mcp_tool_call", "web_search", "collab_tool_call":
		if id := item.Get("id").Str(); id != "" {
			p.calls[id] = true
		}
		return codexCalls(item)
	case "request_user_input":
		return codexQuestions(item)
	}
	return nil
}

func (p *codexParser) itemCompleted(stream string, item streamJSON, line []byte) []Event {
	typ := item.Get("type").Str()
	switch typ {
	case "agent_message", "plan":
		text := item.Get("text").Str()
		if strings.TrimSpace(text) == "" {
			return nil
		}
		if typ == "agent_message" || p.turnText == "" {
			p.turnText, p.lastText = text, text
		}
		return []Event{{Time: time.Now(), Kind: KindText, Text: text}}
	case "reasoning", "todo_list":
		return nil
	case "error":
		// A warning: codex goes on.
		return []Event{cliOutputEvent(stream, item.Get("message").Str())}
	case "request_user_input":
		return codexQuestions(item)
	case "command_execution", "file_change", "mcp_tool_call", "web_search", "collab_tool_call":
		var evs []Event
		if id := item.Get("id").Str(); id == "" || !p.calls[id] {
			evs = codexCalls(item)
		}
		return append(evs, codexResult(item, p.noSandbox)...)
	}
	return []Event{cliRawEvent(line)}
}

// codexCalls are the tool calls an item stands for: one per changed file
// for a file_change.
func codexCalls(item streamJSON) []Event {
	ev := Event{Time: time.Now(), Kind: KindToolCall, ToolKind: "other"}
	switch item.Get("type").Str() {
	case "command_execution":
		ev.Tool, ev.ToolKind, ev.Command = "exec_command", "command", item.Get("command").Str()
	case "file_change":
		var evs []Event
		for _, ch := range item.Get("changes").Arr() {
			evs = append(evs, Event{
				Time: time.Now(), Kind: KindToolCall, Tool: "apply_patch",
				ToolKind: codexChangeKind(ch.Get("kind").Str()), Path: ch.Get("path").Str(),
			})
		}
		return evs
	case "mcp_tool_call":
		ev.Tool = strings.Trim(item.Get("server").Str()+"."+item.Get("tool").Str(), ".")
	case "web_search":
		ev.Tool, ev.Text = "web_search", item.Get("query").Str()
	case "collab_tool_call":
		ev.Tool, ev.Text = item.Get("tool").Str(), eventSnippet(item.Get("prompt").Str())
	}
	return []Event{ev}
}

func codexChangeKind(kind string) string {
	if kind == "add" {
		return "write"
	}
	return "edit"
}

// codexResult is the result of a completed tool item, and for a command the
// sandbox refused, a question too.
func codexResult(item streamJSON, noSandbox bool) []Event {
	ev := Event{Time: time.Now(), Kind: KindToolResult, ToolKind: "other", Status: "ok"}
	status := item.Get("status").Str()
	if status == "failed" {
		ev.Status = "error"
	}
	switch item.Get("type").Str() {
	case "command_execution":
		ev.Tool, ev.ToolKind, ev.Command = "exec_command", "command", item.Get("command").Str()
		out := item.Get("aggregated_output").Str()
		code := item.Get("exit_code")
		failed := status == "failed" || status == "declined" || (code.v != nil && code.Int() != 0)
		ev.Text = eventSnippet(out)
		if failed {
			ev.Status = "error"
			if ev.Text == "" && code.v != nil {
				ev.Text = fmt.Sprintf("exit code %d", code.Int())
			}
		}
		why := ""
		if status == "declined" {
			why = "the command was declined"
		} else if failed && !noSandbox {
			why = codexSandboxDenial(code.Int(), out)
		}
		if why != "" {
			ev.Status, ev.Text = "denied", why
			ev.IsError = true
			q := Event{
				Time: time.Now(), Kind: KindQuestion, Tool: ev.Tool, Command: ev.Command,
				Text: fmt.Sprintf("Codex was not allowed to run `%s`: %s", eventSnippet(ev.Command), why),
			}
			return []Event{ev, q}
		}
	case "file_change":
		ev.Tool = "apply_patch"
		var parts []string
		kind := "write"
		for _, ch := range item.Get("changes").Arr() {
			k, path := ch.Get("kind").Str(), ch.Get("path").Str()
			if codexChangeKind(k) == "edit" {
				kind = "edit"
			}
			parts = append(parts, strings.TrimSpace(k+" "+path))
			ev.Path = path
		}
		if len(parts) != 1 {
			ev.Path = ""
		}
		if len(parts) > 0 {
			ev.ToolKind = kind
		}
		ev.Text = truncateRunes(strings.Join(parts, ", "), 200)
	case "mcp_tool_call":
		ev.Tool = strings.Trim(item.Get("server").Str()+"."+item.Get("tool").Str(), ".")
		ev.Text = eventSnippet(item.Get("error", "message").Str())
		if ev.Text == "" {
			for _, c := range item.Get("result", "content").Arr() {
				if s := eventSnippet(c.Get("text").Str()); s != "" {
					ev.Text = s
					break
				}
			}
		}
		if item.Get("error").IsObject() {
			ev.Status = "error"
		}
	case "web_search":
		ev.Tool, ev.Text = "web_search", item.Get("query").Str()
	case "collab_tool_call":
		ev.Tool = item.Get("tool").Str()
	}
	ev.IsError = ev.Status != "ok"
	return []Event{ev}
}

// codexDeniedPhrases are what a command prints when the sandbox refused it,
// from codex's own is_likely_sandbox_denied, less "permission denied" (too
// common in ordinary failures, and the parser does not know whether a
// sandbox was on) and the bare words "sandbox", "seccomp", "landlock".
var codexDeniedPhrases = []string{
	"read-only file system",
	"operation not permitted",
	"failed to write file",
}

// codexSandboxDenial returns the line of out that shows a sandbox refusal,
// or "" when the failure looks like the command's own.
func codexSandboxDenial(code int64, out string) string {
	if code == 126 || code == 127 {
		return "" // not executable, not found
	}
	for l := range strings.SplitSeq(out, "\n") {
		lower := strings.ToLower(l)
		for _, s := range codexDeniedPhrases {
			if strings.Contains(lower, s) {
				return truncateRunes(strings.TrimSpace(l), 200)
			}
		}
	}
	return ""
}

// codexQuestions reads a request_user_input event or item: questions[] of
// {header, question, options[{label}]}, else a single question field.
func codexQuestions(j streamJSON) []Event {
	var evs []Event
	for _, q := range j.Get("questions").Arr() {
		text := strings.TrimSpace(q.Get("question").Str())
		if h := strings.TrimSpace(q.Get("header").Str()); h != "" && !strings.Contains(text, h) {
			text = strings.TrimSpace(h + ": " + text)
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
		if text != "" {
			evs = append(evs, Event{Time: time.Now(), Kind: KindQuestion, Tool: "request_user_input", Text: text})
		}
	}
	if len(evs) > 0 {
		return evs
	}
	text := ""
	for _, k := range []string{"question", "prompt", "message", "text"} {
		if text = strings.TrimSpace(j.Get(k).Str()); text != "" {
			break
		}
	}
	if text == "" {
		text = "Codex asked for input"
	}
	return []Event{{Time: time.Now(), Kind: KindQuestion, Tool: "request_user_input", Text: text}}
}

func (p *codexParser) turnCompleted(j streamJSON) []Event {
	var evs []Event
	if u := j.Get("usage"); u.IsObject() {
		cur := codexTokens{
			in:     u.Get("input_tokens").Int(),
			cached: u.Get("cached_input_tokens").Int(),
			write:  u.Get("cache_write_input_tokens").Int(),
			out:    u.Get("output_tokens").Int(),
		}
		// codex reports the thread's running total (on a resumed
		// thread, including the earlier runs': see NewResumedParser):
		// report the difference. A total smaller than the last one is taken as a
		// count of its own (a version that reports per turn).
		delta := cur
		if cur.atLeast(p.total) {
			delta = cur.minus(p.total)
		}
		p.total = cur
		if du := delta.usage(); du != (Usage{}) {
			p.run.Add(du)
			evs = append(evs, Event{Time: time.Now(), Kind: KindUsage, Usage: &du})
		}
	}
	text := p.turnText
	if text == "" {
		text = p.lastText
	}
	// The usage events above carry the tokens; the result carries none, so
	// a daemon that re-adopted the run (a fresh parser mid-run) adds them up
	// rather than taking this parser's partial count as the run's total.
	return append(evs, Event{Time: time.Now(), Kind: KindResult, Text: text})
}

// codexTokens is a usage report as codex counts it: input includes the
// cached (and cache-written) tokens.
type codexTokens struct{ in, cached, write, out int64 }

func (a codexTokens) atLeast(b codexTokens) bool {
	return a.in >= b.in && a.cached >= b.cached && a.write >= b.write && a.out >= b.out
}

func (a codexTokens) minus(b codexTokens) codexTokens {
	return codexTokens{a.in - b.in, a.cached - b.cached, a.write - b.write, a.out - b.out}
}

// usage converts to Usage, whose InputTokens (as Claude's) leaves out the
// cached tokens, so that a price table charges each token once.
func (a codexTokens) usage() Usage {
	return Usage{
		InputTokens:      max(a.in-a.cached-a.write, 0),
		OutputTokens:     a.out,
		CacheReadTokens:  a.cached,
		CacheWriteTokens: a.write,
	}
}

var (
	codexAuthRe  = regexp.MustCompile(`(?i)\b(401|403)\b|unauthori[sz]ed|api[ _]key|authenticat|not logged in|log ?in again|please log ?in`)
	codexQuotaRe = regexp.MustCompile(`(?i)usage limit|insufficient_quota|exceeded your current quota|billing`)
	codexAPIRe   = regexp.MustCompile(`(?i)\b[45]\d\d\b|_error\b|"error"|unexpected status|http|stream|disconnected|high demand|overloaded|rate limit|too many requests|server error|service unavailable|bad gateway|timed out|timeout|connection|network`)
)

func codexErrorResult(msg string) Event {
	kind := ErrorOther
	switch {
	case codexAuthRe.MatchString(msg):
		kind = ErrorAuth
	case codexQuotaRe.MatchString(msg):
		kind = ErrorBudget
	case codexAPIRe.MatchString(msg):
		kind = ErrorAPI
	}
	return Event{Time: time.Now(), Kind: KindResult, IsError: true, ErrorKind: kind, Text: codexErrorText(msg)}
}

// codexErrorText makes an API error body such as {"error": {"type":
// "invalid_request_error", "message": "..."}} readable.
func codexErrorText(msg string) string {
	j, ok := parseStreamJSON([]byte(msg))
	if !ok {
		return msg
	}
	e := j.Get("error")
	text := e.Get("message").Str()
	if text == "" {
		text = e.Str()
	}
	if text == "" {
		text = j.Get("message").Str()
	}
	if text == "" {
		return msg
	}
	if typ := e.Get("type").Str(); typ != "" {
		return typ + ": " + text
	}
	return text
}
