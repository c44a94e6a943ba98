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

func TestCodexRegistered(t *testing.T) {
	p, err := Get("codex")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "codex" || !p.CanResume() || !strings.Contains(p.Install(), "npm install -g @openai/codex") {
		t.Fatalf("codex provider: %q %v %q", p.Name(), p.CanResume(), p.Install())
	}
}

func TestCodexParserSamples(t *testing.T) {
	const (
		S = KindSession
		X = KindText
		C = KindToolCall
		R = KindToolResult
		U = KindUsage
		Q = KindQuestion
		F = KindResult
		O = KindOutput
		W = KindRaw
	)
	const warning = "Model metadata for `fake-model` not found. Defaulting to fallback metadata; this can degrade performance and cause issues."
	const cmd = `/bin/bash -lc "printf \"hello from codex\\n\" > hello.txt && ls"`
	tests := []struct {
		file  string
		kinds []Kind
		check func(t *testing.T, evs []Event)
	}{
		{"codex-apply_patch.jsonl", []Kind{S, C, R, X, U, F}, func(t *testing.T, evs []Event) {
			if s := evs[0]; s.SessionID != "01a1feac-ebf2-7710-8995-f87ada8578bb" {
				t.Errorf("session: %+v", s)
			}
			if c := evs[1]; c.Tool != "apply_patch" || c.ToolKind != "write" || c.Path != "/home/dev/repo/hello.txt" {
				t.Errorf("call: %+v", c)
			}
			if r := evs[2]; r.Status != "ok" || r.IsError || r.ToolKind != "write" || r.Path != "/home/dev/repo/hello.txt" || r.Text != "add /home/dev/repo/hello.txt" {
				t.Errorf("result: %+v", r)
			}
			checkCodexDone(t, evs, "Created hello.txt via apply_patch.")
		}},
		{"codex-apply_patch-read-only-rejected.jsonl", []Kind{S, X, U, F}, func(t *testing.T, evs []Event) {
			// The refused patch leaves no item in the stream: nothing
			// tells it apart from a success.
			checkCodexDone(t, evs, "Created hello.txt via apply_patch.")
		}},
		{"codex-exec_command-read-only-sandbox.jsonl", []Kind{S, O, C, R, Q, X, U, F}, func(t *testing.T, evs []Event) {
			if o := evs[1]; o.Text != warning || o.Stream != "stdout" {
				t.Errorf("warning: %+v", o)
			}
			if c := evs[2]; c.Tool != "exec_command" || c.ToolKind != "command" || c.Command != cmd {
				t.Errorf("call: %+v", c)
			}
			if r := evs[3]; r.Status != "denied" || !r.IsError || r.Command != cmd || r.Text != "/bin/bash: line 1: hello.txt: Read-only file system" {
				t.Errorf("result: %+v", r)
			}
			q := evs[4]
			if q.Tool != "exec_command" || q.Command != cmd ||
				q.Text != "Codex was not allowed to run `"+cmd+"`: /bin/bash: line 1: hello.txt: Read-only file system" {
				t.Errorf("question: %+v", q)
			}
			checkCodexDone(t, evs, "Created hello.txt.")
		}},
		{"codex-exec_command-workspace-write.jsonl", []Kind{S, O, C, R, X, U, F}, func(t *testing.T, evs []Event) {
			if r := evs[3]; r.Status != "ok" || r.IsError || r.Command != cmd || r.Text != "pyenv: cannot rehash: /home/dev/.pyenv/shims isn't writable" {
				t.Errorf("result: %+v", r)
			}
			checkCodexDone(t, evs, "Created hello.txt.")
		}},
		{"codex-api-400.jsonl", []Kind{S, O, F}, func(t *testing.T, evs []Event) {
			// The error line and the turn.failed that repeats it make
			// one result.
			checkCodexFailed(t, evs[2], ErrorAPI, "invalid_request_error: fake bad request")
		}},
		{"codex-api-500.jsonl", []Kind{S, O, F}, func(t *testing.T, evs []Event) {
			checkCodexFailed(t, evs[2], ErrorAPI, "We’re currently experiencing high demand, which may cause temporary errors.")
		}},
		{"codex-OPENAI_BASE_URL-ignored-hangs.jsonl", []Kind{S, O, O, O, O, O, O, O, O}, func(t *testing.T, evs []Event) {
			// Retry notices are output, not results.
			if o := evs[2]; !strings.HasPrefix(o.Text, "Reconnecting... 2/5") {
				t.Errorf("retry: %+v", o)
			}
		}},
		{"synthetic-multiturn.jsonl", []Kind{S, C, R, Q, C, C, R, C, R, C, R, X, U, F, Q, X, U, F, F, W, W}, func(t *testing.T, evs []Event) {
			if r := evs[2]; r.Status != "denied" || !r.IsError || r.Text != "the command was declined" {
				t.Errorf("declined: %+v", r)
			}
			if q := evs[3]; q.Text != "Codex was not allowed to run `/bin/bash -lc 'git push'`: the command was declined" {
				t.Errorf("declined question: %+v", q)
			}
			if c := evs[4]; c.Tool != "apply_patch" || c.ToolKind != "edit" || c.Path != "/home/dev/repo/a.go" {
				t.Errorf("change 1: %+v", c)
			}
			if c := evs[5]; c.ToolKind != "write" || c.Path != "/home/dev/repo/b.go" {
				t.Errorf("change 2: %+v", c)
			}
			if r := evs[6]; r.Status != "ok" || r.ToolKind != "edit" || r.Path != "" || r.Text != "update /home/dev/repo/a.go, add /home/dev/repo/b.go" {
				t.Errorf("patch result: %+v", r)
			}
			if c := evs[7]; c.Tool != "docs.search" || c.ToolKind != "other" {
				t.Errorf("mcp call: %+v", c)
			}
			if r := evs[8]; r.Status != "error" || !r.IsError || r.Text != "server crashed" {
				t.Errorf("mcp result: %+v", r)
			}
			// A test failure is the command's own failure, not a denial.
			if r := evs[10]; r.Status != "error" || !r.IsError || r.Text != "--- FAIL: TestX" {
				t.Errorf("failed command: %+v", r)
			}
			// Codex reports running totals; the usage events are the
			// differences, so the daemon's sum is the last total.
			u1 := Usage{InputTokens: 600, CacheReadTokens: 400, OutputTokens: 50}
			u2 := Usage{InputTokens: 500, CacheReadTokens: 1000, OutputTokens: 40}
			total := Usage{InputTokens: 1100, CacheReadTokens: 1400, OutputTokens: 90}
			if *evs[12].Usage != u1 || *evs[16].Usage != u2 {
				t.Errorf("usage deltas: %+v %+v", evs[12].Usage, evs[16].Usage)
			}
			if f := evs[13]; f.Text != "First turn done." || f.IsError || f.Usage != nil {
				t.Errorf("turn 1 result: %+v", f)
			}
			if q := evs[14]; q.Tool != "request_user_input" || q.Text != "Scope: Should I also update the docs? (Yes / No)" {
				t.Errorf("question: %+v", q)
			}
			if f := evs[17]; f.Text != "Second turn done." || f.Usage != nil {
				t.Errorf("turn 2 result: %+v", f)
			}
			if got := cliDaemonUsage(evs); got != total {
				t.Errorf("daemon usage %+v, want %+v", got, total)
			}
			checkCodexFailed(t, evs[18], ErrorAuth, "unexpected status 401 Unauthorized: Incorrect API key provided")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := cliFeed(t, codex{}, filepath.Join("codex", tt.file))
			if got := cliKinds(evs); !slices.Equal(got, tt.kinds) {
				t.Fatalf("kinds:\n got %v\nwant %v", got, tt.kinds)
			}
			tt.check(t, evs)
		})
	}
}

// checkCodexDone checks the end of a one-turn run of the fake model: 200
// input and 40 output tokens, no cost.
func checkCodexDone(t *testing.T, evs []Event, text string) {
	t.Helper()
	want := Usage{InputTokens: 200, OutputTokens: 40}
	n := len(evs)
	if u := evs[n-2]; u.Kind != KindUsage || *u.Usage != want {
		t.Errorf("usage: %+v", u.Usage)
	}
	f := evs[n-1]
	// The result carries no usage: the usage events do (see turnCompleted).
	if f.Kind != KindResult || f.Text != text || f.IsError || f.ErrorKind != "" || f.Usage != nil {
		t.Errorf("result: %+v (usage %+v)", f, f.Usage)
	}
	if got := cliDaemonUsage(evs); got != want {
		t.Errorf("daemon usage %+v, want %+v", got, want)
	}
}

func checkCodexFailed(t *testing.T, r Event, kind, text string) {
	t.Helper()
	if r.Kind != KindResult || !r.IsError || r.ErrorKind != kind || r.Text != text {
		t.Errorf("result: %+v, want error kind %q text %q", r, kind, text)
	}
}

func TestCodexParserLines(t *testing.T) {
	tests := []struct {
		stream, line string
		want         []Event
	}{
		{"stderr", "2026-11-21T16:27:18Z ERROR codex_api: failed", []Event{{Kind: KindOutput, Stream: "stderr", Text: "2026-11-21T16:27:18Z ERROR codex_api: failed"}}},
		{"stdout", "Reading additional input from stdin...", []Event{{Kind: KindOutput, Stream: "stdout", Text: "Reading additional input from stdin..."}}},
		{"stdout", "", nil},
		{"stdout", `{"type":"item.updated","item":{"id":"i","type":"todo_list","items":[]}}`, nil},
		{"stdout", `{"type":"item.completed","item":{"id":"i","type":"reasoning","text":"hm"}}`, nil},
		{"stdout", `{"type":"turn.failed","error":{}}`, []Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorOther, Text: "turn failed"}}},
		{"stdout", `{"type":"error","message":"You've hit your usage limit."}`, []Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorBudget, Text: "You've hit your usage limit."}}},
		{"stdout", `{"type":"error","message":"stream disconnected before completion"}`, []Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorAPI, Text: "stream disconnected before completion"}}},
		{"stdout", `{"type":"error","message":"something odd"}`, []Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorOther, Text: "something odd"}}},
		{"stdout", `{"type":"item.completed","item":{"id":"r","type":"request_user_input","prompt":"Proceed?"}}`, []Event{{Kind: KindQuestion, Tool: "request_user_input", Text: "Proceed?"}}},
		{"stdout", `{"type":"exec.request_user_input","question":"Which one?"}`, []Event{{Kind: KindQuestion, Tool: "request_user_input", Text: "Which one?"}}},
		{"stdout", `{"type":"item.completed","item":{"id":"w","type":"web_search","query":"go fuzz"}}`, []Event{
			{Kind: KindToolCall, Tool: "web_search", ToolKind: "other", Text: "go fuzz"},
			{Kind: KindToolResult, Tool: "web_search", ToolKind: "other", Status: "ok", Text: "go fuzz"},
		}},
		// Not found is the command's own failure even with a keyword.
		{"stdout", `{"type":"item.completed","item":{"id":"c","type":"command_execution","command":"x","aggregated_output":"sandbox: x: not found","exit_code":127,"status":"failed"}}`, []Event{
			{Kind: KindToolCall, Tool: "exec_command", ToolKind: "command", Command: "x"},
			{Kind: KindToolResult, Tool: "exec_command", ToolKind: "command", Command: "x", Status: "error", IsError: true, Text: "sandbox: x: not found"},
		}},
		{"stdout", `{"type":"item.completed","item":{"id":"c2","type":"command_execution","command":"curl x","aggregated_output":"","exit_code":6,"status":"failed"}}`, []Event{
			{Kind: KindToolCall, Tool: "exec_command", ToolKind: "command", Command: "curl x"},
			{Kind: KindToolResult, Tool: "exec_command", ToolKind: "command", Command: "curl x", Status: "error", IsError: true, Text: "exit code 6"},
		}},
		{"stdout", `{"type":"turn.completed","usage":null}`, []Event{{Kind: KindResult}}},
	}
	for _, tt := range tests {
		p := codex{}.NewParser()
		got := p.Line(tt.stream, []byte(tt.line))
		for i := range got {
			got[i].Time = time.Time{}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tt.stream, tt.line, got, tt.want)
		}
	}
}

func TestCodexUsageReset(t *testing.T) {
	// A total smaller than the last is counted on its own, never negative.
	p := codex{}.NewParser()
	p.Line("stdout", []byte(`{"type":"turn.completed","usage":{"input_tokens":100,"cached_input_tokens":0,"output_tokens":10}}`))
	evs := p.Line("stdout", []byte(`{"type":"turn.completed","usage":{"input_tokens":30,"cached_input_tokens":0,"output_tokens":20}}`))
	if len(evs) != 2 || *evs[0].Usage != (Usage{InputTokens: 30, OutputTokens: 20}) || evs[1].Kind != KindResult {
		t.Errorf("events: %+v", evs)
	}
	// Cached more than input (malformed) does not go negative.
	evs = codex{}.NewParser().Line("stdout", []byte(`{"type":"turn.completed","usage":{"input_tokens":5,"cached_input_tokens":9,"output_tokens":1}}`))
	if evs[0].Usage.InputTokens != 0 || evs[0].Usage.CacheReadTokens != 9 {
		t.Errorf("usage: %+v", evs[0].Usage)
	}
}

func TestCodexResumedParser(t *testing.T) {
	// Measured with codex 0.169.0: a first run of two turns reported
	// 200/40; the resumed run, one turn of 100/20, reported 300/60.
	prior := Usage{InputTokens: 150, CacheReadTokens: 50, OutputTokens: 40}
	p := codex{}.NewResumedParser(prior)
	evs := p.Line("stdout", []byte(`{"type":"turn.completed","usage":{"input_tokens":300,"cached_input_tokens":50,"output_tokens":60}}`))
	want := Usage{InputTokens: 100, OutputTokens: 20}
	if len(evs) != 2 || *evs[0].Usage != want || evs[1].Kind != KindResult {
		t.Errorf("events: %+v", evs)
	}
}

func TestCodexCommand(t *testing.T) {
	exe, dir := cliFakeExe(t)
	argv := func(sandbox string, extra ...string) []string {
		return append([]string{exe, "exec", "--json", "-s", sandbox}, extra...)
	}
	tests := []struct {
		name string
		spec Spec
		task Task
		want []string
	}{
		{"plain", Spec{}, Task{Prompt: "fix it"}, argv("workspace-write", "--", "fix it")},
		{"prompt starting with a dash", Spec{}, Task{Prompt: "-h is broken"}, argv("workspace-write", "--", "-h is broken")},
		{"default", Spec{PermissionMode: "default"}, Task{Prompt: "p"}, argv("workspace-write", "--", "p")},
		{"acceptEdits", Spec{PermissionMode: "acceptEdits"}, Task{Prompt: "p"}, argv("workspace-write", "--", "p")},
		{"plan", Spec{PermissionMode: "plan"}, Task{Prompt: "p"}, argv("read-only", "--", "p")},
		{"bypass", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p"}, argv("danger-full-access", "--", "p")},
		{"codex read-only", Spec{PermissionMode: "read-only"}, Task{Prompt: "p"}, argv("read-only", "--", "p")},
		{"codex workspace-write", Spec{PermissionMode: "workspace-write"}, Task{Prompt: "p"}, argv("workspace-write", "--", "p")},
		{"codex danger-full-access", Spec{PermissionMode: "danger-full-access"}, Task{Prompt: "p"}, argv("danger-full-access", "--", "p")},
		{"read-only task overrides", Spec{PermissionMode: "danger-full-access"}, Task{Prompt: "p", ReadOnly: true}, argv("read-only", "--", "p")},
		{"spec model", Spec{Model: "gpt-a"}, Task{Prompt: "p"}, argv("workspace-write", "-m", "gpt-a", "--", "p")},
		{"task model wins", Spec{Model: "gpt-a"}, Task{Prompt: "p", Model: "gpt-b"}, argv("workspace-write", "-m", "gpt-b", "--", "p")},
		{"no turn limit flag, no tool list", Spec{MaxTurns: 5}, Task{Prompt: "p", MaxTurns: 3, AllowTools: []string{"x"}}, argv("workspace-write", "--", "p")},
		{"args expanded before the prompt", Spec{Model: "m1", Args: []string{"-c", "model_reasoning_effort=high", "--add-dir={worktree}/../x-{id}-{model}"}},
			Task{Prompt: "p", ID: "a1"},
			argv("workspace-write", "-m", "m1", "-c", "model_reasoning_effort=high", "--add-dir="+dir+"/../x-a1-m1", "--", "p")},
		{"resume: options before the subcommand", Spec{Model: "m1", PermissionMode: "plan", Args: []string{"-c", "k=v"}},
			Task{Prompt: "and now?", Resume: "01a1feac-ebf2-7710-8995-f87ada8578bb"},
			argv("read-only", "-m", "m1", "-c", "k=v", "resume", "--", "01a1feac-ebf2-7710-8995-f87ada8578bb", "and now?")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Binary = exe
			tt.task.Worktree = dir
			got, env, err := codex{}.Command(tt.spec, tt.task)
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

	_, env, err := codex{}.Command(Spec{Binary: exe, Env: map[string]string{"CODEX_HOME": "/h", "A": "b"}}, Task{Prompt: "p", Worktree: dir})
	if err != nil || !slices.Equal(env, []string{"A=b", "CODEX_HOME=/h"}) {
		t.Errorf("env: %q %v", env, err)
	}
}

func TestCodexCommandBadPermissionMode(t *testing.T) {
	exe, dir := cliFakeExe(t)
	_, _, err := codex{}.Command(Spec{Name: "cx", Binary: exe, PermissionMode: "auto"}, Task{Prompt: "p", Worktree: dir})
	if err == nil {
		t.Fatal("no error for permission_mode auto")
	}
	for _, s := range []string{`"auto"`, `"cx"`, "default, acceptEdits, plan, bypassPermissions", "read-only, workspace-write, danger-full-access"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
}

func TestCodexCommandNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	for _, bin := range []string{"", "codex-missing", filepath.Join(dir, "nope")} {
		_, _, err := codex{}.Command(Spec{Binary: bin}, Task{Prompt: "p", Worktree: dir})
		if !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("binary %q: error %v does not wrap ErrNotInstalled", bin, err)
		}
		if !strings.Contains(err.Error(), codex{}.Install()) {
			t.Errorf("binary %q: error %q lacks the install hint", bin, err)
		}
	}
}

func FuzzCodexParser(f *testing.F) {
	cliSeedFuzz(f, "codex")
	f.Fuzz(func(t *testing.T, data []byte) { cliFuzzParser(t, codex{}, data) })
}
