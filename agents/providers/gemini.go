package providers

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// gemini runs Gemini CLI headless:
//
//	gemini --output-format stream-json [flags] --prompt=PROMPT
//
// and reads its stream-json lines (init, message, tool_use, tool_result,
// error, result). Checked against Gemini CLI 0.61.0.
//
// Exit codes the daemon may see: 41 authentication, 42 bad input, 52
// configuration, 53 the turn limit (settings.json maxSessionTurns; there is
// no flag for it), 54 a fatal tool error, 55 an untrusted folder, 130
// cancelled. The stream's result line says the same (error.type).
type gemini struct{}

func init() { Register(gemini{}) }

func (gemini) Name() string { return "gemini" }

func (gemini) Install() string {
	return "install Gemini CLI: npm install -g @google/gemini-cli"
}

// CanResume is true: a follow-up continues the session with --resume ID
// (Gemini CLI accepts a session UUID there as well as "latest" or an
// index; sessions are kept per project directory, the worktree).
func (gemini) CanResume() bool { return true }

// geminiPermissionModes are the permission_mode values the gemini provider
// accepts, mapped onto --approval-mode.
var geminiPermissionModes = []string{"default", "acceptEdits", "plan", "bypassPermissions"}

func geminiApprovalMode(mode string) string {
	switch mode {
	case "acceptEdits":
		return "auto_edit"
	case "bypassPermissions":
		return "yolo"
	}
	// "default" and "plan" have the same names.
	return mode
}

// geminiTrustEnv trusts the worktree: with folder trust enabled in the
// user's settings, headless Gemini CLI refuses an untrusted folder (exit
// 55) and forces any approval mode back to "default".
const geminiTrustEnv = "GEMINI_CLI_TRUST_WORKSPACE"

// Command builds the argv. The prompt is passed as one --prompt=PROMPT
// argument so that a prompt starting with "-" is not taken for an option.
// There is no max-turns flag: the daemon counts turns itself.
func (g gemini) Command(spec Spec, t Task) ([]string, []string, error) {
	mode := spec.PermissionMode
	if mode != "" && !slices.Contains(geminiPermissionModes, mode) {
		return nil, nil, fmt.Errorf("agent %q: permission_mode %q is not valid for gemini (allowed: %s)",
			spec.Name, mode, strings.Join(geminiPermissionModes, ", "))
	}
	if t.ReadOnly {
		// Plan mode is Gemini CLI's read-only mode: it may write plans
		// only, under ~/.gemini/tmp, never in the worktree.
		mode = "plan"
	}
	name := spec.Binary
	if name == "" {
		name = "gemini"
	}
	exe, err := LookPath(name, t.Worktree, g.Install())
	if err != nil {
		return nil, nil, err
	}
	model := t.Model
	if model == "" {
		model = spec.Model
	}
	argv := []string{exe, "--output-format", "stream-json"}
	if model != "" {
		argv = append(argv, "--model", model)
	}
	if mode != "" {
		argv = append(argv, "--approval-mode", geminiApprovalMode(mode))
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
		// Deprecated in favour of policy files but still honoured: in the
		// default approval mode these tools run without confirmation.
		argv = append(argv, "--allowed-tools", strings.Join(tools, ","))
	}
	et := t
	et.Model = model
	for _, a := range spec.Args {
		argv = append(argv, Expand(a, et))
	}
	argv = append(argv, "--prompt="+t.Prompt)

	env := EnvList(spec.Env)
	if _, set := spec.Env[geminiTrustEnv]; !set {
		env = append(env, geminiTrustEnv+"=true")
		slices.Sort(env)
	}
	return argv, env, nil
}

func (gemini) NewParser() Parser {
	return &geminiParser{tools: map[string]geminiTool{}}
}

// geminiParser reads Gemini CLI's stream-json output. Assistant text comes
// as deltas (one line per streamed chunk); they are joined into one text
// event, emitted when any other line arrives.
type geminiParser struct {
	session string
	// pending is the assistant text streamed since the last other event.
	pending strings.Builder
	// last is the last complete assistant text: the result's text.
	last string
	// tools holds the tool calls by tool_id, to name their results.
	tools map[string]geminiTool
	// errKind and errText are from the last error line, for a result
	// line that says "error" without saying why.
	errKind, errText string
}

type geminiTool struct {
	name, kind, path, command string
}

func (p *geminiParser) Line(stream string, line []byte) []Event {
	if strings.TrimSpace(string(line)) == "" {
		return nil
	}
	if stream != "stdout" {
		return []Event{cliOutputEvent(stream, string(line))}
	}
	j, ok := parseStreamJSON(line)
	if !ok {
		return append(p.flush(), cliOutputEvent(stream, string(line)))
	}
	typ := j.Get("type").Str()
	if typ == "message" && j.Get("role").Str() == "assistant" && j.Get("delta").Bool() {
		p.pending.WriteString(j.Get("content").Str())
		return nil
	}
	evs := p.flush()
	switch typ {
	case "init":
		if sid := j.Get("session_id").Str(); sid != "" {
			p.session = sid
			evs = append(evs, Event{Time: time.Now(), Kind: KindSession, SessionID: sid, Text: j.Get("model").Str()})
		}
	case "message":
		// A complete assistant message (no delta flag). The user's
		// message is the prompt: the daemon has it already.
		if j.Get("role").Str() == "assistant" {
			evs = append(evs, p.text(j.Get("content").Str())...)
		}
	case "tool_use":
		evs = append(evs, p.toolUse(j))
	case "tool_result":
		evs = append(evs, p.toolResult(j)...)
	case "error":
		evs = append(evs, p.errorLine(j))
	case "result":
		evs = append(evs, p.result(j))
	default:
		evs = append(evs, cliRawEvent(line))
	}
	return evs
}

// flush emits the assistant text streamed so far.
func (p *geminiParser) flush() []Event {
	text := p.pending.String()
	p.pending.Reset()
	return p.text(text)
}

func (p *geminiParser) text(text string) []Event {
	if strings.TrimSpace(text) == "" {
		return nil
	}
	p.last = text
	return []Event{{Time: time.Now(), Kind: KindText, Text: text}}
}

func (p *geminiParser) toolUse(j streamJSON) Event {
	name := j.Get("tool_name").Str()
	in := j.Get("parameters")
	tool := geminiTool{name: name, kind: geminiToolKind(name), command: in.Get("command").Str()}
	for _, k := range []string{"file_path", "absolute_path", "path", "dir_path"} {
		if s := in.Get(k).Str(); s != "" {
			tool.path = s
			break
		}
	}
	if id := j.Get("tool_id").Str(); id != "" {
		p.tools[id] = tool
	}
	return Event{Time: time.Now(), Kind: KindToolCall, Tool: name, ToolKind: tool.kind, Path: tool.path, Command: tool.command}
}

func geminiToolKind(name string) string {
	switch name {
	case "write_file":
		return "write"
	case "replace", "edit":
		return "edit"
	case "run_shell_command":
		return "command"
	case "read_file", "read_many_files", "glob", "grep_search", "search_file_content", "list_directory":
		return "read"
	}
	return "other"
}

// geminiGatedTools are the built-in tools that need approval. Headless
// Gemini CLI in the default approval mode does not register them, so a
// call answers "tool_not_registered": the run lacked the permission.
var geminiGatedTools = []string{"write_file", "replace", "edit", "run_shell_command", "web_fetch", "save_memory"}

func (p *geminiParser) toolResult(j streamJSON) []Event {
	tool := p.tools[j.Get("tool_id").Str()]
	errType := j.Get("error", "type").Str()
	text := j.Get("output").Str()
	if msg := j.Get("error", "message").Str(); msg != "" {
		text = msg
	}
	status, isErr := "ok", false
	if j.Get("status").Str() != "success" {
		isErr = true
		status = "error"
		if errType == "policy_violation" || (errType == "tool_not_registered" && slices.Contains(geminiGatedTools, tool.name)) {
			status = "denied"
		}
	}
	evs := []Event{{
		Time: time.Now(), Kind: KindToolResult, Tool: tool.name, ToolKind: tool.kind,
		Path: tool.path, Command: tool.command, Status: status, Text: eventSnippet(text), IsError: isErr,
	}}
	if status == "denied" {
		evs = append(evs, Event{
			Time: time.Now(), Kind: KindQuestion, Tool: tool.name, Path: tool.path, Command: tool.command,
			Text: vendorDenialText("Gemini", tool.name, tool.path, tool.command),
		})
	}
	return evs
}

// errorLine is a warning (a retry, a blocked hook) or an error; an error
// ends the run, and the result line that follows says so again.
func (p *geminiParser) errorLine(j streamJSON) Event {
	msg := j.Get("message").Str()
	if j.Get("severity").Str() == "warning" {
		return cliOutputEvent("stdout", "warning: "+msg)
	}
	p.errKind, p.errText = geminiErrorKind("", msg), msg
	return Event{Time: time.Now(), Kind: KindResult, Text: msg, SessionID: p.session, IsError: true, ErrorKind: p.errKind}
}

func (p *geminiParser) result(j streamJSON) Event {
	res := Event{Time: time.Now(), Kind: KindResult, Text: p.last, SessionID: p.session}
	if j.Get("status").Str() != "success" {
		res.IsError = true
		errType, msg := j.Get("error", "type").Str(), j.Get("error", "message").Str()
		switch {
		case errType != "" || msg != "":
			res.ErrorKind = geminiErrorKind(errType, msg)
		case p.errKind != "":
			res.ErrorKind, msg = p.errKind, p.errText
		default:
			res.ErrorKind = ErrorOther
		}
		if msg != "" {
			res.Text = msg
		}
	}
	if st := j.Get("stats"); st.IsObject() {
		cached := st.Get("cached").Int()
		// "input" is the prompt tokens less the cached ones; older
		// versions have only input_tokens.
		in := st.Get("input").Int()
		if st.Get("input").v == nil {
			in = max(0, st.Get("input_tokens").Int()-cached)
		}
		res.Usage = &Usage{InputTokens: in, OutputTokens: st.Get("output_tokens").Int(), CacheReadTokens: cached}
	}
	return res
}

// geminiErrorKind maps an error class name (FatalTurnLimitedError, ...)
// or message to an error kind.
func geminiErrorKind(errType, msg string) string {
	lower := strings.ToLower(msg)
	switch {
	case errType == "FatalTurnLimitedError", strings.Contains(lower, "max session turns"), strings.Contains(lower, "maximum session turns"):
		return ErrorMaxTurns
	case errType == "FatalAuthenticationError", errType == "UnauthorizedError", errType == "ForbiddenError",
		errType == "AccountSuspendedError", strings.Contains(lower, "api key"), strings.Contains(lower, "auth method"):
		return ErrorAuth
	case strings.HasPrefix(errType, "Fatal"):
		return ErrorOther
	}
	return ErrorAPI
}

// vendorDenialText is the question asked when an agent was refused a tool.
func vendorDenialText(agent, tool, path, command string) string {
	if tool == "" {
		tool = "a tool"
	}
	switch {
	case command != "":
		return fmt.Sprintf("%s wanted to use %s to run `%s` but was not allowed", agent, tool, eventSnippet(command))
	case path != "":
		return fmt.Sprintf("%s wanted to use %s on %s but was not allowed", agent, tool, path)
	}
	return fmt.Sprintf("%s wanted to use %s but was not allowed", agent, tool)
}

// Flush returns the assistant text still held back when the output ends.
func (p *geminiParser) Flush() []Event { return p.flush() }
