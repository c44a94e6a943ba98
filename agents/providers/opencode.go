package providers

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// opencode runs OpenCode headless:
//
//	opencode run --format json [flags] -- PROMPT
//
// and reads its JSON lines (step_start, tool_use, text, reasoning,
// step_finish, error). Checked against OpenCode 1.18.33.
type opencode struct{}

func init() { Register(opencode{}) }

func (opencode) Name() string { return "opencode" }

func (opencode) Install() string {
	return "install OpenCode: npm install -g opencode-ai"
}

// CanResume is true: a follow-up continues the session with --session ID.
func (opencode) CanResume() bool { return true }

var opencodePermissionModes = []string{"default", "acceptEdits", "plan", "bypassPermissions"}

// opencodePermissionEnv holds JSON that OpenCode merges into the
// "permission" of its configuration.
const opencodePermissionEnv = "OPENCODE_PERMISSION"

// opencodeModePermissions are the permissions set for a permission_mode.
// OpenCode's own default allows edits and commands; "opencode run" rejects
// what is set to "ask" (there is nobody to ask), and the tool result says
// so. bypassPermissions adds --auto instead, which approves every "ask"
// but keeps the user's "deny" rules.
var opencodeModePermissions = map[string]map[string]string{
	"default":     {"edit": "ask", "bash": "ask"},
	"acceptEdits": {"bash": "ask"},
}

// Command builds the argv. The prompt goes last, after "--", so that a
// prompt starting with "-" is not taken for an option. Read-only runs and
// permission_mode "plan" use OpenCode's "plan" agent, which may not edit.
// An empty permission_mode leaves OpenCode's configuration alone. OpenCode
// has no max-turns flag: the daemon counts turns itself.
func (o opencode) Command(spec Spec, t Task) ([]string, []string, error) {
	mode := spec.PermissionMode
	if mode != "" && !slices.Contains(opencodePermissionModes, mode) {
		return nil, nil, fmt.Errorf("agent %q: permission_mode %q is not valid for opencode (allowed: %s)",
			spec.Name, mode, strings.Join(opencodePermissionModes, ", "))
	}
	if t.ReadOnly {
		mode = "plan"
	}
	name := spec.Binary
	if name == "" {
		name = "opencode"
	}
	exe, err := LookPath(name, t.Worktree, o.Install())
	if err != nil {
		return nil, nil, err
	}
	model := t.Model
	if model == "" {
		model = spec.Model
	}
	argv := []string{exe, "run", "--format", "json"}
	if model != "" {
		// provider/model, as OpenCode names them.
		argv = append(argv, "-m", model)
	}
	switch mode {
	case "plan":
		argv = append(argv, "--agent", "plan")
	case "bypassPermissions":
		// Approves what is still "ask" (files outside the worktree).
		argv = append(argv, "--auto")
	}
	if t.Resume != "" {
		argv = append(argv, "--session", t.Resume)
	}
	et := t
	et.Model = model
	for _, a := range spec.Args {
		argv = append(argv, Expand(a, et))
	}
	argv = append(argv, "--", t.Prompt)

	env := EnvList(spec.Env)
	if perm, ok := opencodePermissions(spec, mode, t.AllowTools); ok {
		env = slices.DeleteFunc(env, func(kv string) bool { return strings.HasPrefix(kv, opencodePermissionEnv+"=") })
		env = append(env, opencodePermissionEnv+"="+perm)
		slices.Sort(env)
	}
	return argv, env, nil
}

// opencodePermissions is the OPENCODE_PERMISSION value for a run: the
// agent's own OPENCODE_PERMISSION (env) when it is a JSON object, else the
// permissions of the mode, plus the tools the user allowed. It returns
// false when there is nothing to set or the agent's value is not an object.
func opencodePermissions(spec Spec, mode string, allow []string) (string, bool) {
	perm := map[string]any{}
	if own, set := spec.Env[opencodePermissionEnv]; set {
		if json.Unmarshal([]byte(own), &perm) != nil || perm == nil {
			return "", false
		}
	} else {
		for k, v := range opencodeModePermissions[mode] {
			perm[k] = v
		}
	}
	for _, tool := range allow {
		if tool = strings.TrimSpace(tool); tool != "" {
			perm[opencodePermissionKey(tool)] = "allow"
		}
	}
	if len(perm) == 0 {
		return "", false
	}
	b, err := json.Marshal(perm)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// opencodePermissionKey is the permission that governs a tool: "edit"
// covers every tool that changes files.
func opencodePermissionKey(tool string) string {
	switch tool {
	case "write", "edit", "patch", "multiedit", "apply_patch":
		return "edit"
	}
	return tool
}

func (opencode) NewParser() Parser { return &opencodeParser{} }

// opencodeParser reads OpenCode's JSON lines. OpenCode prints no final
// result line: a step that finishes with reason "stop" ends the run, and
// its last text is the result.
type opencodeParser struct {
	session string
	last    string
	usage   Usage
}

func (p *opencodeParser) Line(stream string, line []byte) []Event {
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
	if sid := j.Get("sessionID").Str(); sid != "" && p.session == "" {
		p.session = sid
		evs = append(evs, Event{Time: time.Now(), Kind: KindSession, SessionID: sid})
	}
	part := j.Get("part")
	switch j.Get("type").Str() {
	case "step_start":
	case "text":
		if text := part.Get("text").Str(); strings.TrimSpace(text) != "" {
			p.last = text
			evs = append(evs, Event{Time: time.Now(), Kind: KindText, Text: text})
		}
	case "reasoning":
		// Only with --thinking.
		if text := part.Get("text").Str(); strings.TrimSpace(text) != "" {
			evs = append(evs, cliOutputEvent("stdout", "thinking: "+text))
		}
	case "tool_use":
		evs = append(evs, opencodeTool(part)...)
	case "step_finish":
		evs = append(evs, p.stepFinish(part)...)
	case "error":
		evs = append(evs, p.errorLine(j.Get("error")))
	default:
		evs = append(evs, cliRawEvent(line))
	}
	return evs
}

// opencodeTool turns a finished tool part (OpenCode prints a tool once,
// completed or failed) into a call and its result.
func opencodeTool(part streamJSON) []Event {
	name := part.Get("tool").Str()
	st := part.Get("state")
	in := st.Get("input")
	call := Event{Time: time.Now(), Kind: KindToolCall, Tool: name, ToolKind: opencodeToolKind(name), Command: in.Get("command").Str()}
	for _, k := range []string{"filePath", "path", "file_path"} {
		if s := in.Get(k).Str(); s != "" {
			call.Path = s
			break
		}
	}
	res := call
	res.Kind = KindToolResult
	res.Status = "ok"
	res.Text = eventSnippet(st.Get("output").Str())
	evs := []Event{call}
	if st.Get("status").Str() == "error" {
		msg := st.Get("error").Str()
		res.IsError, res.Status, res.Text = true, "error", eventSnippet(msg)
		if opencodeDenied(msg) {
			res.Status = "denied"
			evs = append(evs, res, Event{
				Time: time.Now(), Kind: KindQuestion, Tool: name, Path: call.Path, Command: call.Command,
				Text: vendorDenialText("OpenCode", name, call.Path, call.Command),
			})
			return evs
		}
	}
	return append(evs, res)
}

func opencodeToolKind(name string) string {
	switch name {
	case "write":
		return "write"
	case "edit", "multiedit", "patch", "apply_patch":
		return "edit"
	case "bash":
		return "command"
	case "read", "glob", "grep", "list", "ls":
		return "read"
	}
	return "other"
}

// opencodeDenied reports whether a tool error is a refused permission:
// "The user rejected permission to use this specific tool call." (opencode
// run rejects every permission it would have to ask for), or "The user has
// specified a rule which prevents you from using this specific tool call".
func opencodeDenied(msg string) bool {
	lower := strings.ToLower(msg)
	return strings.Contains(lower, "rejected permission") || strings.Contains(lower, "prevents you from using this specific tool")
}

func (p *opencodeParser) stepFinish(part streamJSON) []Event {
	var evs []Event
	tok := part.Get("tokens")
	u := Usage{
		InputTokens:      tok.Get("input").Int(),
		OutputTokens:     tok.Get("output").Int() + tok.Get("reasoning").Int(),
		CacheReadTokens:  tok.Get("cache", "read").Int(),
		CacheWriteTokens: tok.Get("cache", "write").Int(),
		CostUSD:          part.Get("cost").Num(),
	}
	if u != (Usage{}) {
		p.usage.Add(u)
		evs = append(evs, Event{Time: time.Now(), Kind: KindUsage, Usage: &u})
	}
	if part.Get("reason").Str() == "stop" {
		total := p.usage
		evs = append(evs, Event{Time: time.Now(), Kind: KindResult, Text: p.last, SessionID: p.session, Usage: &total})
	}
	return evs
}

// errorLine is a session error: {"name": "APIError", "data": {"message":
// ..., "statusCode": 500}}. OpenCode exits 1 after it.
func (p *opencodeParser) errorLine(e streamJSON) Event {
	name := e.Get("name").Str()
	msg := e.Get("data", "message").Str()
	if msg == "" {
		msg = e.Get("message").Str()
	}
	if msg == "" {
		msg = name
	}
	kind := ErrorOther
	status := streamInt(e.Get("data", "statusCode"))
	switch {
	case name == "ProviderAuthError", status == 401, status == 403:
		kind = ErrorAuth
	case name == "APIError":
		kind = ErrorAPI
	}
	total := p.usage
	ev := Event{Time: time.Now(), Kind: KindResult, Text: msg, SessionID: p.session, IsError: true, ErrorKind: kind}
	if total != (Usage{}) {
		ev.Usage = &total
	}
	return ev
}
