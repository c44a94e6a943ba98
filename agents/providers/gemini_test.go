package providers

import (
	"errors"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestGeminiRegistered(t *testing.T) {
	p, err := Get("gemini")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "gemini" || !p.CanResume() || !strings.Contains(p.Install(), "npm install -g @google/gemini-cli") {
		t.Fatalf("gemini provider: %q %v %q", p.Name(), p.CanResume(), p.Install())
	}
}

func TestGeminiParserSamples(t *testing.T) {
	const (
		S = KindSession
		X = KindText
		C = KindToolCall
		R = KindToolResult
		Q = KindQuestion
		F = KindResult
	)
	const repo = "/home/dev/gemini.repo"
	writeRun := []Kind{S, C, R, X, F}
	deniedRun := []Kind{S, C, R, Q, X, F}
	tests := []struct {
		file  string
		kinds []Kind
		check func(t *testing.T, evs []Event)
	}{
		{"gemini-write_file.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkGeminiWrite(t, evs, "f054eef8-d7a4-41e2-8589-608a7963ad57", Usage{InputTokens: 300, OutputTokens: 60})
		}},
		{"gemini-0.61.0-yolo-write-deltas.jsonl", writeRun, func(t *testing.T, evs []Event) {
			// Two streamed chunks make one text event.
			checkGeminiWrite(t, evs, "5c665e2e-0043-4250-a3b8-e3ba62b9fded", Usage{InputTokens: 300, OutputTokens: 60})
		}},
		{"gemini-0.61.0-allowed-tools-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkGeminiWrite(t, evs, "244ef7bc-2b77-4398-9fe7-2e0fa53ea2e7", Usage{InputTokens: 300, OutputTokens: 60})
		}},
		{"gemini-0.61.0-default-write-not-registered.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			if c := evs[1]; c.Tool != "write_file" || c.ToolKind != "write" || c.Path != repo+"/hello.txt" {
				t.Errorf("tool call: %+v", c)
			}
			if r := evs[2]; r.Status != "denied" || !r.IsError || r.Tool != "write_file" || r.Path != repo+"/hello.txt" ||
				!strings.HasPrefix(r.Text, `Tool "write_file" not found.`) {
				t.Errorf("tool result: %+v", r)
			}
			if q := evs[3]; q.Tool != "write_file" || q.Path != repo+"/hello.txt" ||
				q.Text != "Gemini wanted to use write_file on "+repo+"/hello.txt but was not allowed" {
				t.Errorf("question: %+v", q)
			}
			if f := evs[5]; f.IsError || f.Text != "Created hello.txt." {
				t.Errorf("result: %+v", f)
			}
		}},
		{"gemini-0.61.0-auto_edit-shell-not-registered.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			const cmd = "touch made-by-shell.txt"
			if c := evs[1]; c.Tool != "run_shell_command" || c.ToolKind != "command" || c.Command != cmd || c.Path != "" {
				t.Errorf("tool call: %+v", c)
			}
			if r := evs[2]; r.Status != "denied" || r.Command != cmd {
				t.Errorf("tool result: %+v", r)
			}
			if q := evs[3]; q.Tool != "run_shell_command" || q.Command != cmd ||
				q.Text != "Gemini wanted to use run_shell_command to run `"+cmd+"` but was not allowed" {
				t.Errorf("question: %+v", q)
			}
		}},
		{"gemini-0.61.0-plan-write-denied.jsonl", writeRun, func(t *testing.T, evs []Event) {
			// Plan mode refuses the path: an error, not a question.
			if r := evs[2]; r.Status != "error" || !r.IsError || !strings.HasPrefix(r.Text, "Access denied: plan path") {
				t.Errorf("tool result: %+v", r)
			}
			if f := evs[4]; f.IsError || f.Usage == nil || *f.Usage != (Usage{InputTokens: 200, OutputTokens: 40}) {
				t.Errorf("result: %+v", f)
			}
		}},
		{"gemini-0.61.0-api-500.jsonl", []Kind{S, F}, func(t *testing.T, evs []Event) {
			f := evs[1]
			if !f.IsError || f.ErrorKind != ErrorAPI || !strings.Contains(f.Text, "internal error") ||
				f.SessionID != "8611f72e-22cc-458f-a955-aff9e386c124" || f.Usage == nil || *f.Usage != (Usage{}) {
				t.Errorf("result: %+v", f)
			}
		}},
		{"gemini-0.61.0-resume.jsonl", []Kind{S, X, F}, func(t *testing.T, evs []Event) {
			if s := evs[0]; s.SessionID != "c5866599-f023-4660-86b2-6c69f4547e71" {
				t.Errorf("session: %+v", s)
			}
			if f := evs[2]; f.IsError || f.Text != "Created hello.txt." || *f.Usage != (Usage{InputTokens: 200, OutputTokens: 40}) {
				t.Errorf("result: %+v", f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := cliFeed(t, gemini{}, filepath.Join("gemini", tt.file))
			if got := cliKinds(evs); !slices.Equal(got, tt.kinds) {
				t.Fatalf("kinds:\n got %v\nwant %v", got, tt.kinds)
			}
			tt.check(t, evs)
		})
	}
}

func checkGeminiWrite(t *testing.T, evs []Event, session string, usage Usage) {
	t.Helper()
	if s := evs[0]; s.SessionID != session || s.Text != "auto" {
		t.Errorf("session: %+v", s)
	}
	if c := evs[1]; c.Tool != "write_file" || c.ToolKind != "write" || !strings.HasSuffix(c.Path, ".repo/hello.txt") || c.Command != "" {
		t.Errorf("tool call: %+v", c)
	}
	if r := evs[2]; r.Tool != "write_file" || r.ToolKind != "write" || r.Status != "ok" || r.IsError || r.Path != evs[1].Path {
		t.Errorf("tool result: %+v", r)
	}
	if x := evs[3]; x.Text != "Created hello.txt." {
		t.Errorf("text: %+v", x)
	}
	f := evs[4]
	if f.Text != "Created hello.txt." || f.IsError || f.ErrorKind != "" || f.SessionID != session {
		t.Errorf("result: %+v", f)
	}
	if f.Usage == nil || *f.Usage != usage {
		t.Errorf("result usage %+v, want %+v", f.Usage, usage)
	}
	if got := cliDaemonUsage(evs); got != usage {
		t.Errorf("daemon usage %+v, want %+v", got, usage)
	}
}

func TestGeminiParserLines(t *testing.T) {
	type step struct {
		stream, line string
		want         []Event
	}
	run := func(t *testing.T, steps []step) {
		t.Helper()
		p := gemini{}.NewParser()
		for _, s := range steps {
			got := p.Line(s.stream, []byte(s.line))
			for i := range got {
				got[i].Time = time.Time{}
			}
			if !reflect.DeepEqual(got, s.want) {
				t.Errorf("%s %s:\n got %+v\nwant %+v", s.stream, s.line, got, s.want)
			}
		}
	}
	t.Run("misc", func(t *testing.T) {
		run(t, []step{
			{"stderr", "YOLO mode is enabled.", []Event{{Kind: KindOutput, Stream: "stderr", Text: "YOLO mode is enabled."}}},
			{"stderr", `{"type":"result"}`, []Event{{Kind: KindOutput, Stream: "stderr", Text: `{"type":"result"}`}}},
			{"stdout", "  ", nil},
			{"stdout", `{"type":"message","role":"user","content":"hi"}`, nil},
			{"stdout", `{"type":"telemetry","x":1}`, []Event{{Kind: KindRaw, Raw: `{"type":"telemetry","x":1}`}}},
			{"stdout", `{"type":"error","severity":"warning","message":"retrying"}`, []Event{{Kind: KindOutput, Stream: "stdout", Text: "warning: retrying"}}},
			{"stdout", `{"type":"tool_result","tool_id":"unknown","status":"error","error":{"type":"policy_violation","message":"Tool execution denied by policy."}}`, []Event{
				{Kind: KindToolResult, Status: "denied", IsError: true, Text: "Tool execution denied by policy."},
				{Kind: KindQuestion, Text: "Gemini wanted to use a tool but was not allowed"},
			}},
			// A tool the model made up is an error, not a question.
			{"stdout", `{"type":"tool_use","tool_name":"frobnicate","tool_id":"f1","parameters":{"path":"x"}}`,
				[]Event{{Kind: KindToolCall, Tool: "frobnicate", ToolKind: "other", Path: "x"}}},
			{"stdout", `{"type":"tool_result","tool_id":"f1","status":"error","error":{"type":"tool_not_registered","message":"Tool \"frobnicate\" not found."}}`,
				[]Event{{Kind: KindToolResult, Tool: "frobnicate", ToolKind: "other", Path: "x", Status: "error", IsError: true, Text: `Tool "frobnicate" not found.`}}},
			{"stdout", `{"type":"tool_use","tool_name":"replace","tool_id":"r1","parameters":{"absolute_path":"/a/b.go"}}`,
				[]Event{{Kind: KindToolCall, Tool: "replace", ToolKind: "edit", Path: "/a/b.go"}}},
			{"stdout", `{"type":"tool_use","tool_name":"glob","tool_id":"g1","parameters":{"pattern":"*.go","dir_path":"/a"}}`,
				[]Event{{Kind: KindToolCall, Tool: "glob", ToolKind: "read", Path: "/a"}}},
			{"stdout", `{"type":"tool_result","tool_id":"r1","status":"success","output":"ok\nmore"}`,
				[]Event{{Kind: KindToolResult, Tool: "replace", ToolKind: "edit", Path: "/a/b.go", Status: "ok", Text: "ok"}}},
		})
	})
	t.Run("deltas", func(t *testing.T) {
		run(t, []step{
			{"stdout", `{"type":"init","session_id":"s1","model":"m"}`, []Event{{Kind: KindSession, SessionID: "s1", Text: "m"}}},
			{"stdout", `{"type":"message","role":"assistant","content":"Hel","delta":true}`, nil},
			{"stdout", `{"type":"message","role":"assistant","content":"lo","delta":true}`, nil},
			// stderr does not end the message; another stdout line does.
			{"stderr", "noise", []Event{{Kind: KindOutput, Stream: "stderr", Text: "noise"}}},
			{"stdout", "not json", []Event{{Kind: KindText, Text: "Hello"}, {Kind: KindOutput, Stream: "stdout", Text: "not json"}}},
			{"stdout", `{"type":"message","role":"assistant","content":"Bye","delta":true}`, nil},
			{"stdout", `{"type":"message","role":"assistant","content":"Whole."}`, []Event{{Kind: KindText, Text: "Bye"}, {Kind: KindText, Text: "Whole."}}},
			{"stdout", `{"type":"result","status":"success","stats":{"input_tokens":50,"output_tokens":5,"cached":20}}`,
				[]Event{{Kind: KindResult, Text: "Whole.", SessionID: "s1", Usage: &Usage{InputTokens: 30, OutputTokens: 5, CacheReadTokens: 20}}}},
		})
	})
	t.Run("turn limit", func(t *testing.T) {
		msg := "Reached max session turns for this session. Increase the number of turns by specifying maxSessionTurns in settings.json."
		run(t, []step{
			{"stdout", `{"type":"message","role":"assistant","content":"partial","delta":true}`, nil},
			{"stdout", `{"type":"result","status":"error","error":{"type":"FatalTurnLimitedError","message":"` + msg + `"}}`, []Event{
				{Kind: KindText, Text: "partial"},
				{Kind: KindResult, Text: msg, IsError: true, ErrorKind: ErrorMaxTurns},
			}},
		})
	})
	t.Run("error line then bare error result", func(t *testing.T) {
		run(t, []step{
			{"stdout", `{"type":"error","severity":"error","message":"Model stream ended with an invalid chunk"}`,
				[]Event{{Kind: KindResult, Text: "Model stream ended with an invalid chunk", IsError: true, ErrorKind: ErrorAPI}}},
			{"stdout", `{"type":"result","status":"error","stats":{"input":1,"input_tokens":3,"cached":2,"output_tokens":1}}`,
				[]Event{{Kind: KindResult, Text: "Model stream ended with an invalid chunk", IsError: true, ErrorKind: ErrorAPI,
					Usage: &Usage{InputTokens: 1, OutputTokens: 1, CacheReadTokens: 2}}}},
		})
	})
	t.Run("error kinds", func(t *testing.T) {
		for _, tt := range []struct{ typ, msg, want string }{
			{"FatalAuthenticationError", "x", ErrorAuth},
			{"", "Please set an API key", ErrorAuth},
			{"FatalCancellationError", "Operation cancelled.", ErrorOther},
			{"unknown", "[API Error: 429]", ErrorAPI},
			{"", "Maximum session turns exceeded", ErrorMaxTurns},
		} {
			if got := geminiErrorKind(tt.typ, tt.msg); got != tt.want {
				t.Errorf("geminiErrorKind(%q, %q) = %q, want %q", tt.typ, tt.msg, got, tt.want)
			}
		}
	})
}

func TestGeminiCommand(t *testing.T) {
	exe, dir := cliFakeExe(t)
	base := []string{exe, "--output-format", "stream-json"}
	argv := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	tests := []struct {
		name string
		spec Spec
		task Task
		want []string
	}{
		{"plain", Spec{}, Task{Prompt: "fix it"}, argv("--prompt=fix it")},
		{"prompt starting with a dash", Spec{}, Task{Prompt: "-v is broken"}, argv("--prompt=-v is broken")},
		{"spec model", Spec{Model: "gemini-2.5-pro"}, Task{Prompt: "p"}, argv("--model", "gemini-2.5-pro", "--prompt=p")},
		{"task model wins", Spec{Model: "a"}, Task{Prompt: "p", Model: "b"}, argv("--model", "b", "--prompt=p")},
		{"max turns ignored", Spec{MaxTurns: 5}, Task{Prompt: "p", MaxTurns: 3}, argv("--prompt=p")},
		{"default mode", Spec{PermissionMode: "default"}, Task{Prompt: "p"}, argv("--approval-mode", "default", "--prompt=p")},
		{"acceptEdits", Spec{PermissionMode: "acceptEdits"}, Task{Prompt: "p"}, argv("--approval-mode", "auto_edit", "--prompt=p")},
		{"plan", Spec{PermissionMode: "plan"}, Task{Prompt: "p"}, argv("--approval-mode", "plan", "--prompt=p")},
		{"bypass", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p"}, argv("--approval-mode", "yolo", "--prompt=p")},
		{"read-only overrides", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p", ReadOnly: true}, argv("--approval-mode", "plan", "--prompt=p")},
		{"read-only without mode", Spec{}, Task{Prompt: "p", ReadOnly: true}, argv("--approval-mode", "plan", "--prompt=p")},
		{"resume", Spec{}, Task{Prompt: "and now?", Resume: "c5866599"}, argv("--resume", "c5866599", "--prompt=and now?")},
		{"allowed tools", Spec{}, Task{Prompt: "p", AllowTools: []string{"write_file", " ", "run_shell_command"}},
			argv("--allowed-tools", "write_file,run_shell_command", "--prompt=p")},
		{"args expanded", Spec{Model: "m", Args: []string{"--include-directories", "{worktree}/../shared", "--debug={model}"}},
			Task{Prompt: "p"}, argv("--model", "m", "--include-directories", dir+"/../shared", "--debug=m", "--prompt=p")},
		{"everything", Spec{Model: "a", PermissionMode: "acceptEdits", Args: []string{"--sandbox"}},
			Task{Prompt: "go", Model: "b", Resume: "s", AllowTools: []string{"run_shell_command"}},
			argv("--model", "b", "--approval-mode", "auto_edit", "--resume", "s", "--allowed-tools", "run_shell_command", "--sandbox", "--prompt=go")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Binary = exe
			tt.task.Worktree = dir
			got, env, err := gemini{}.Command(tt.spec, tt.task)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("argv:\n got %q\nwant %q", got, tt.want)
			}
			if !slices.Equal(env, []string{"GEMINI_CLI_TRUST_WORKSPACE=true"}) {
				t.Errorf("env: %q", env)
			}
		})
	}
}

func TestGeminiCommandEnv(t *testing.T) {
	exe, dir := cliFakeExe(t)
	spec := Spec{Binary: exe, Env: map[string]string{"Z": "1", "GEMINI_API_KEY": "k"}}
	_, env, err := gemini{}.Command(spec, Task{Prompt: "p", Worktree: dir})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"GEMINI_API_KEY=k", "GEMINI_CLI_TRUST_WORKSPACE=true", "Z=1"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
	// The agent's own setting is kept.
	spec.Env["GEMINI_CLI_TRUST_WORKSPACE"] = "false"
	_, env, _ = gemini{}.Command(spec, Task{Prompt: "p", Worktree: dir})
	if want := []string{"GEMINI_API_KEY=k", "GEMINI_CLI_TRUST_WORKSPACE=false", "Z=1"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
}

func TestGeminiCommandBadPermissionMode(t *testing.T) {
	exe, dir := cliFakeExe(t)
	_, _, err := gemini{}.Command(Spec{Name: "g", Binary: exe, PermissionMode: "yolo"}, Task{Prompt: "p", Worktree: dir})
	if err == nil || !strings.Contains(err.Error(), `"yolo"`) || !strings.Contains(err.Error(), "default, acceptEdits, plan, bypassPermissions") {
		t.Fatalf("error: %v", err)
	}
}

func TestGeminiCommandNotInstalled(t *testing.T) {
	checkNotInstalled(t, gemini{})
}

// checkNotInstalled checks that a missing executable, on PATH or by path,
// gives an error wrapping ErrNotInstalled with the install hint.
func checkNotInstalled(t *testing.T, p Provider) {
	t.Helper()
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	for _, bin := range []string{"", p.Name() + "-missing", filepath.Join(dir, "nope"), "bin/nope"} {
		_, _, err := p.Command(Spec{Binary: bin}, Task{Prompt: "p", Worktree: dir})
		if !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("binary %q: error %v does not wrap ErrNotInstalled", bin, err)
		}
		if !strings.Contains(err.Error(), p.Install()) {
			t.Errorf("binary %q: error %q lacks the install hint", bin, err)
		}
	}
}

func FuzzGeminiParser(f *testing.F) {
	cliSeedFuzz(f, "gemini")
	f.Add([]byte(`{"type":"message","role":"assistant","delta":true,"content":5}`))
	f.Add([]byte(`{"type":"result","status":"error","stats":{"input_tokens":1e400}}`))
	f.Fuzz(func(t *testing.T, data []byte) { cliFuzzParser(t, gemini{}, data) })
}
