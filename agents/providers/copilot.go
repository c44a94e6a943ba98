package providers

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// copilot runs GitHub Copilot CLI headless:
//
//	copilot --output-format json --no-ask-user [flags] --prompt=PROMPT
//
// and reads its JSON lines: {"type": "assistant.message", "data": {...}},
// "tool.execution_start", "tool.execution_complete", "session.error", ...
// and a last {"type": "result", "sessionId": ..., "exitCode": ...}. Lines
// marked "ephemeral" are streaming progress (deltas, model calls) and are
// skipped; types not known here are kept as raw events. Checked against
// Copilot CLI 1.0.102. Copilot reports premium requests, not tokens, so
// runs have no usage.
type copilot struct{}

func init() { Register(copilot{}) }

func (copilot) Name() string { return "copilot" }

func (copilot) Install() string {
	return "install GitHub Copilot CLI: npm install -g @github/copilot"
}

// CanResume is true: a follow-up continues the session with --resume=ID.
func (copilot) CanResume() bool { return true }

var copilotPermissionModes = []string{"default", "acceptEdits", "plan", "bypassPermissions"}

// Command builds the argv. Options that take a value are passed as one
// --name=value argument: --allow-tool and --deny-tool take several values,
// --resume an optional one, and the prompt may start with "-".
//
// Permissions: in prompt mode Copilot denies every tool that needs
// approval (writes, shell commands) unless allowed. acceptEdits allows
// writes, bypassPermissions all tools; read-only runs and "plan" deny
// writes and shell commands outright (denial wins over any allow). Copilot
// has no turn limit flag: the daemon counts turns itself.
func (c copilot) Command(spec Spec, t Task) ([]string, []string, error) {
	mode := spec.PermissionMode
	if mode != "" && !slices.Contains(copilotPermissionModes, mode) {
		return nil, nil, fmt.Errorf("agent %q: permission_mode %q is not valid for copilot (allowed: %s)",
			spec.Name, mode, strings.Join(copilotPermissionModes, ", "))
	}
	if t.ReadOnly {
		mode = "plan"
	}
	name := spec.Binary
	if name == "" {
		name = "copilot"
	}
	exe, err := LookPath(name, t.Worktree, c.Install())
	if err != nil {
		return nil, nil, err
	}
	model := t.Model
	if model == "" {
		model = spec.Model
	}
	argv := []string{exe, "--output-format", "json", "--no-ask-user"}
	if model != "" {
		argv = append(argv, "--model", model)
	}
	switch mode {
	case "acceptEdits":
		argv = append(argv, "--allow-tool=write")
	case "bypassPermissions":
		argv = append(argv, "--allow-all-tools")
	case "plan":
		argv = append(argv, "--deny-tool=write", "--deny-tool=shell")
	}
	var allowed []string
	for _, tool := range t.AllowTools {
		if p := copilotPermission(strings.TrimSpace(tool)); p != "" && !slices.Contains(allowed, p) {
			allowed = append(allowed, p)
			argv = append(argv, "--allow-tool="+p)
		}
	}
	if t.Resume != "" {
		argv = append(argv, "--resume="+t.Resume)
	}
	et := t
	et.Model = model
	for _, a := range spec.Args {
		argv = append(argv, Expand(a, et))
	}
	argv = append(argv, "--prompt="+t.Prompt)
	return argv, EnvList(spec.Env), nil
}

// copilotPermission is the permission pattern that allows a tool, from the
// tool name a denied call reported: "write" for the tools that change
// files, "shell" for the shell tools; anything else (an MCP server's
// "server(tool)", a pattern given by hand) is passed as it is.
func copilotPermission(tool string) string {
	switch tool {
	case "create", "edit", "str_replace_editor", "write", "apply_patch":
		return "write"
	case "bash", "powershell", "write_bash", "shell":
		return "shell"
	}
	return tool
}

func (copilot) NewParser() Parser {
	return &copilotParser{tools: map[string]copilotTool{}}
}

// copilotParser reads Copilot CLI's JSON lines.
type copilotParser struct {
	session string
	last    string
	turns   int
	tools   map[string]copilotTool
	// errKind and errText are from the last session.error line.
	errKind, errText string
}

type copilotTool struct {
	name, kind, path, command string
}

func (p *copilotParser) Line(stream string, line []byte) []Event {
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
	var evs []Event
	data := j.Get("data")
	// Any line may carry the session id; the result line always does.
	if sid := copilotStr(j.Get("sessionId"), data.Get("sessionId")); sid != "" && sid != p.session {
		p.session = sid
		evs = append(evs, Event{Time: time.Now(), Kind: KindSession, SessionID: sid})
	}
	switch typ := j.Get("type").Str(); typ {
	case "assistant.turn_start":
		p.turns++
	case "assistant.message":
		if text := data.Get("content").Str(); strings.TrimSpace(text) != "" {
			p.last = text
			evs = append(evs, Event{Time: time.Now(), Kind: KindText, Text: text})
		}
	case "tool.execution_start":
		evs = append(evs, p.toolStart(data))
	case "tool.execution_complete":
		evs = append(evs, p.toolComplete(data)...)
	case "session.error":
		evs = append(evs, p.sessionError(data))
	case "session.info", "session.warning":
		// {"infoType": "model_retry", "message": "Request failed ..."}
		if msg := data.Get("message").Str(); msg != "" {
			if it := data.Get("infoType").Str(); it != "" {
				msg = it + ": " + msg
			}
			if typ == "session.warning" {
				msg = "warning: " + msg
			}
			evs = append(evs, cliOutputEvent("stdout", msg))
		}
	case "result":
		evs = append(evs, p.result(j))
	case "user.message", "assistant.turn_end":
		// The prompt, and the end of a model call.
	default:
		if !j.Get("ephemeral").Bool() {
			evs = append(evs, cliRawEvent(line))
		}
	}
	return evs
}

func copilotStr(vals ...streamJSON) string {
	for _, v := range vals {
		if s := v.Str(); s != "" {
			return s
		}
	}
	return ""
}

func (p *copilotParser) toolStart(data streamJSON) Event {
	name := copilotStr(data.Get("toolName"), data.Get("name"))
	in := data.Get("arguments")
	tool := copilotTool{name: name, kind: copilotToolKind(name), command: in.Get("command").Str()}
	for _, k := range []string{"path", "file_path", "filePath"} {
		if s := in.Get(k).Str(); s != "" {
			tool.path = s
			break
		}
	}
	if id := data.Get("toolCallId").Str(); id != "" {
		p.tools[id] = tool
	}
	return Event{Time: time.Now(), Kind: KindToolCall, Tool: name, ToolKind: tool.kind, Path: tool.path, Command: tool.command}
}

func copilotToolKind(name string) string {
	switch name {
	case "create", "write":
		return "write"
	case "edit", "str_replace_editor", "apply_patch":
		return "edit"
	case "bash", "powershell", "write_bash":
		return "command"
	case "view", "grep", "glob", "read_bash":
		return "read"
	}
	return "other"
}

func (p *copilotParser) toolComplete(data streamJSON) []Event {
	tool := p.tools[data.Get("toolCallId").Str()]
	res := Event{
		Time: time.Now(), Kind: KindToolResult, Tool: tool.name, ToolKind: tool.kind,
		Path: tool.path, Command: tool.command, Status: "ok",
		Text: eventSnippet(data.Get("result", "content").Str()),
	}
	if data.Get("success").Bool() {
		return []Event{res}
	}
	res.IsError, res.Status = true, "error"
	if msg := data.Get("error", "message").Str(); msg != "" {
		res.Text = eventSnippet(msg)
	}
	if data.Get("error", "code").Str() != "denied" {
		return []Event{res}
	}
	res.Status = "denied"
	return []Event{res, {
		Time: time.Now(), Kind: KindQuestion, Tool: tool.name, Path: tool.path, Command: tool.command,
		Text: vendorDenialText("Copilot", tool.name, tool.path, tool.command),
	}}
}

// sessionError is the error that ends the run ("Failed to get response
// from the AI model; retried 5 times ..."); the result line follows.
func (p *copilotParser) sessionError(data streamJSON) Event {
	msg := data.Get("message").Str()
	status := streamInt(data.Get("statusCode"))
	lower := strings.ToLower(msg)
	kind := ErrorOther
	switch {
	case status == 401 || status == 403, strings.Contains(lower, "not authenticated"), strings.Contains(lower, "/login"):
		kind = ErrorAuth
	case status != 0, data.Get("errorType").Str() == "query":
		kind = ErrorAPI
	}
	p.errKind, p.errText = kind, msg
	return Event{Time: time.Now(), Kind: KindResult, Text: msg, SessionID: p.session, IsError: true, ErrorKind: kind, Turns: p.turns}
}

func (p *copilotParser) result(j streamJSON) Event {
	res := Event{Time: time.Now(), Kind: KindResult, Text: p.last, SessionID: p.session, Turns: p.turns}
	if streamInt(j.Get("exitCode")) != 0 {
		res.IsError = true
		res.ErrorKind = p.errKind
		if res.ErrorKind == "" {
			res.ErrorKind = ErrorOther
		}
		if p.errText != "" {
			res.Text = p.errText
		}
	}
	return res
}
