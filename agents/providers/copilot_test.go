package providers

import (
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestCopilotRegistered(t *testing.T) {
	p, err := Get("copilot")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "copilot" || !p.CanResume() || !strings.Contains(p.Install(), "npm install -g @github/copilot") {
		t.Fatalf("copilot provider: %q %v %q", p.Name(), p.CanResume(), p.Install())
	}
}

func TestCopilotParserSamples(t *testing.T) {
	const (
		S = KindSession
		X = KindText
		C = KindToolCall
		R = KindToolResult
		Q = KindQuestion
		F = KindResult
		O = KindOutput
	)
	const hello = "/home/dev/copilot.repo/hello.txt"
	writeRun := []Kind{C, O, R, X, S, F}
	deniedRun := []Kind{C, R, Q, X, S, F}
	tests := []struct {
		file  string
		kinds []Kind
		check func(t *testing.T, evs []Event)
	}{
		{"copilot-1.0.102-allow-all-tools-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkCopilotWrite(t, evs, "4cfc6549-6c71-4fb0-827f-d83d04e72fd9")
		}},
		{"copilot-1.0.102-allow-tool-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkCopilotWrite(t, evs, "73e645ef-4238-45ab-9148-b42079431521")
		}},
		{"copilot-1.0.102-allow-all-tools-bash.jsonl", []Kind{C, R, X, S, F}, func(t *testing.T, evs []Event) {
			const cmd = "touch made-by-bash.txt"
			if c := evs[0]; c.Tool != "bash" || c.ToolKind != "command" || c.Command != cmd || c.Path != "" {
				t.Errorf("tool call: %+v", c)
			}
			if r := evs[1]; r.Tool != "bash" || r.Status != "ok" || r.IsError || r.Text != "<shellId: 0 completed with exit code 0>" {
				t.Errorf("tool result: %+v", r)
			}
		}},
		{"copilot-1.0.102-default-write-denied.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			checkCopilotDenied(t, evs, "create", hello, "", "Permission denied because no interactive user response was available.")
		}},
		{"copilot-1.0.102-deny-tool-write.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			checkCopilotDenied(t, evs, "create", hello, "", "Permission to run this tool was denied due to the following rules: `write`")
		}},
		{"copilot-1.0.102-allow-tool-write-bash-denied.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			checkCopilotDenied(t, evs, "bash", "", "touch made-by-bash.txt", "Permission denied because no interactive user response")
		}},
		{"copilot-1.0.102-deny-tool-shell.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			checkCopilotDenied(t, evs, "bash", "", "git status", "Permission to run this tool was denied due to the following rules: `shell`")
		}},
		{"copilot-1.0.102-api-500.jsonl", []Kind{O, O, O, O, O, F, S, F}, func(t *testing.T, evs []Event) {
			if o := evs[0]; o.Stream != "stdout" || o.Text != "model_retry: Request failed due to a transient API error. Retrying..." {
				t.Errorf("retry: %+v", o)
			}
			const msg = "Failed to get response from the AI model; retried 5 times (total retry wait time: 15.98 seconds) Last error: 500 internal error"
			for _, f := range []Event{evs[5], evs[7]} {
				if !f.IsError || f.ErrorKind != ErrorAPI || f.Text != msg || f.Turns != 1 {
					t.Errorf("result: %+v", f)
				}
			}
			if f := evs[7]; f.SessionID != "817c8bb5-9b4c-471b-a565-b2aee360c75f" {
				t.Errorf("result session: %+v", f)
			}
		}},
		{"copilot-1.0.102-resume.jsonl", []Kind{X, S, F}, func(t *testing.T, evs []Event) {
			// The resumed session keeps its id.
			if s := evs[1]; s.SessionID != "73e645ef-4238-45ab-9148-b42079431521" {
				t.Errorf("session: %+v", s)
			}
			if f := evs[2]; f.Text != "Created hello.txt." || f.IsError || f.Turns != 1 {
				t.Errorf("result: %+v", f)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := cliFeed(t, copilot{}, filepath.Join("copilot", tt.file))
			if got := cliKinds(evs); !slices.Equal(got, tt.kinds) {
				t.Fatalf("kinds:\n got %v\nwant %v", got, tt.kinds)
			}
			tt.check(t, evs)
			// Copilot reports no tokens.
			if u := cliDaemonUsage(evs); u != (Usage{}) {
				t.Errorf("usage: %+v", u)
			}
		})
	}
}

func checkCopilotWrite(t *testing.T, evs []Event, session string) {
	t.Helper()
	const hello = "/home/dev/copilot.repo/hello.txt"
	if c := evs[0]; c.Tool != "create" || c.ToolKind != "write" || c.Path != hello || c.Command != "" {
		t.Errorf("tool call: %+v", c)
	}
	if o := evs[1]; o.Text != "file_created: "+hello {
		t.Errorf("info: %+v", o)
	}
	if r := evs[2]; r.Tool != "create" || r.ToolKind != "write" || r.Path != hello || r.Status != "ok" || r.IsError ||
		r.Text != "Created file "+hello+" with 19 characters" {
		t.Errorf("tool result: %+v", r)
	}
	if x := evs[3]; x.Text != "Created hello.txt." {
		t.Errorf("text: %+v", x)
	}
	if s := evs[4]; s.SessionID != session {
		t.Errorf("session: %+v", s)
	}
	if f := evs[5]; f.Text != "Created hello.txt." || f.IsError || f.ErrorKind != "" || f.SessionID != session || f.Turns != 2 || f.Usage != nil {
		t.Errorf("result: %+v", f)
	}
}

func checkCopilotDenied(t *testing.T, evs []Event, tool, path, cmd, text string) {
	t.Helper()
	if c := evs[0]; c.Tool != tool || c.Path != path || c.Command != cmd {
		t.Errorf("tool call: %+v", c)
	}
	if r := evs[1]; r.Tool != tool || r.Status != "denied" || !r.IsError || !strings.HasPrefix(r.Text, text) {
		t.Errorf("tool result: %+v", r)
	}
	what := "on " + path
	if cmd != "" {
		what = "to run `" + cmd + "`"
	}
	if q := evs[2]; q.Tool != tool || q.Path != path || q.Command != cmd || q.Text != "Copilot wanted to use "+tool+" "+what+" but was not allowed" {
		t.Errorf("question: %+v", q)
	}
	if f := evs[5]; f.IsError || f.Text != "Created hello.txt." || f.Turns != 2 {
		t.Errorf("result: %+v", f)
	}
}

func TestCopilotParserLines(t *testing.T) {
	p := copilot{}.NewParser()
	steps := []struct {
		stream, line string
		want         []Event
	}{
		{"stderr", "Error: No authentication information found.", []Event{{Kind: KindOutput, Stream: "stderr", Text: "Error: No authentication information found."}}},
		{"stdout", " ", nil},
		{"stdout", "plain", []Event{{Kind: KindOutput, Stream: "stdout", Text: "plain"}}},
		{"stdout", `[1,2]`, []Event{{Kind: KindOutput, Stream: "stdout", Text: `[1,2]`}}},
		// Unknown types are kept, unless they are ephemeral progress.
		{"stdout", `{"type":"subagent.started","data":{"name":"x"}}`, []Event{{Kind: KindRaw, Raw: `{"type":"subagent.started","data":{"name":"x"}}`}}},
		{"stdout", `{"type":"assistant.reasoning_delta","ephemeral":true,"data":{}}`, nil},
		{"stdout", `{"type":"session.start","data":{"sessionId":"s1"}}`, []Event{
			{Kind: KindSession, SessionID: "s1"}, {Kind: KindRaw, Raw: `{"type":"session.start","data":{"sessionId":"s1"}}`}}},
		{"stdout", `{"type":"assistant.turn_start","data":{"turnId":"0"}}`, nil},
		{"stdout", `{"type":"session.warning","data":{"message":"slow"}}`, []Event{{Kind: KindOutput, Stream: "stdout", Text: "warning: slow"}}},
		{"stdout", `{"type":"assistant.message","data":{"content":"  ","toolRequests":[]}}`, nil},
		{"stdout", `{"type":"tool.execution_start","data":{"toolCallId":"t1","toolName":"edit","arguments":{"path":"/r/a.go","old_str":"a","new_str":"b"}}}`,
			[]Event{{Kind: KindToolCall, Tool: "edit", ToolKind: "edit", Path: "/r/a.go"}}},
		{"stdout", `{"type":"tool.execution_start","data":{"toolCallId":"t2","toolName":"view","arguments":{"path":"/r"}}}`,
			[]Event{{Kind: KindToolCall, Tool: "view", ToolKind: "read", Path: "/r"}}},
		{"stdout", `{"type":"tool.execution_complete","data":{"toolCallId":"t1","success":false,"error":{"message":"old_str not found","code":"failure"}}}`,
			[]Event{{Kind: KindToolResult, Tool: "edit", ToolKind: "edit", Path: "/r/a.go", Status: "error", IsError: true, Text: "old_str not found"}}},
		{"stdout", `{"type":"session.error","data":{"errorType":"authentication","message":"Not authorized","statusCode":401}}`,
			[]Event{{Kind: KindResult, Text: "Not authorized", SessionID: "s1", IsError: true, ErrorKind: ErrorAuth, Turns: 1}}},
		{"stdout", `{"type":"result","sessionId":"s1","exitCode":1}`,
			[]Event{{Kind: KindResult, Text: "Not authorized", SessionID: "s1", IsError: true, ErrorKind: ErrorAuth, Turns: 1}}},
	}
	for _, s := range steps {
		got := p.Line(s.stream, []byte(s.line))
		for i := range got {
			got[i].Time = time.Time{}
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", s.stream, s.line, got, s.want)
		}
	}

	// A failed exit without a session error.
	p = copilot{}.NewParser()
	got := p.Line("stdout", []byte(`{"type":"result","sessionId":"s2","exitCode":2}`))
	if len(got) != 2 || got[1].Kind != KindResult || !got[1].IsError || got[1].ErrorKind != ErrorOther {
		t.Errorf("failed result: %+v", got)
	}
}

func TestCopilotCommand(t *testing.T) {
	exe, dir := cliFakeExe(t)
	base := []string{exe, "--output-format", "json", "--no-ask-user"}
	argv := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	tests := []struct {
		name string
		spec Spec
		task Task
		want []string
	}{
		{"plain", Spec{}, Task{Prompt: "fix it"}, argv("--prompt=fix it")},
		{"prompt starting with a dash", Spec{}, Task{Prompt: "-v is broken"}, argv("--prompt=-v is broken")},
		{"spec model", Spec{Model: "gpt-5.4"}, Task{Prompt: "p"}, argv("--model", "gpt-5.4", "--prompt=p")},
		{"task model wins", Spec{Model: "a"}, Task{Prompt: "p", Model: "b"}, argv("--model", "b", "--prompt=p")},
		{"max turns ignored", Spec{MaxTurns: 9}, Task{Prompt: "p", MaxTurns: 1}, argv("--prompt=p")},
		{"default mode", Spec{PermissionMode: "default"}, Task{Prompt: "p"}, argv("--prompt=p")},
		{"acceptEdits", Spec{PermissionMode: "acceptEdits"}, Task{Prompt: "p"}, argv("--allow-tool=write", "--prompt=p")},
		{"bypass", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p"}, argv("--allow-all-tools", "--prompt=p")},
		{"plan", Spec{PermissionMode: "plan"}, Task{Prompt: "p"}, argv("--deny-tool=write", "--deny-tool=shell", "--prompt=p")},
		{"read-only overrides", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p", ReadOnly: true},
			argv("--deny-tool=write", "--deny-tool=shell", "--prompt=p")},
		{"resume", Spec{}, Task{Prompt: "and now?", Resume: "73e645ef"}, argv("--resume=73e645ef", "--prompt=and now?")},
		{"allowed tools", Spec{}, Task{Prompt: "p", AllowTools: []string{"create", "edit", " ", "bash", "MyMCP(tool)"}},
			argv("--allow-tool=write", "--allow-tool=shell", "--allow-tool=MyMCP(tool)", "--prompt=p")},
		{"args expanded", Spec{Model: "m", Args: []string{"--add-dir", "{worktree}/../data", "--name={id}"}},
			Task{Prompt: "p", ID: "a7"}, argv("--model", "m", "--add-dir", dir+"/../data", "--name=a7", "--prompt=p")},
		{"everything", Spec{Model: "a", PermissionMode: "acceptEdits", Args: []string{"--silent"}},
			Task{Prompt: "go", Model: "b", Resume: "s", AllowTools: []string{"bash"}},
			argv("--model", "b", "--allow-tool=write", "--allow-tool=shell", "--resume=s", "--silent", "--prompt=go")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Binary = exe
			tt.task.Worktree = dir
			got, env, err := copilot{}.Command(tt.spec, tt.task)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("argv:\n got %q\nwant %q", got, tt.want)
			}
			if len(env) != 0 {
				t.Errorf("env: %q", env)
			}
		})
	}
	_, env, err := copilot{}.Command(Spec{Binary: exe, Env: map[string]string{"COPILOT_MODEL": "x"}}, Task{Prompt: "p", Worktree: dir})
	if err != nil || !slices.Equal(env, []string{"COPILOT_MODEL=x"}) {
		t.Errorf("env %q, err %v", env, err)
	}
}

func TestCopilotCommandBadPermissionMode(t *testing.T) {
	exe, dir := cliFakeExe(t)
	_, _, err := copilot{}.Command(Spec{Name: "c", Binary: exe, PermissionMode: "yolo"}, Task{Prompt: "p", Worktree: dir})
	if err == nil || !strings.Contains(err.Error(), `"yolo"`) || !strings.Contains(err.Error(), "default, acceptEdits, plan, bypassPermissions") {
		t.Fatalf("error: %v", err)
	}
}

func TestCopilotCommandNotInstalled(t *testing.T) {
	checkNotInstalled(t, copilot{})
}

func FuzzCopilotParser(f *testing.F) {
	cliSeedFuzz(f, "copilot")
	f.Add([]byte(`{"type":"result","exitCode":"1","sessionId":5}`))
	f.Add([]byte(`{"type":"tool.execution_complete","data":{"toolCallId":[],"error":{"code":"denied"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) { cliFuzzParser(t, copilot{}, data) })
}
