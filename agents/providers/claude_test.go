package providers

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// Helpers shared with codex_test.go.

// cliFeed runs a fresh parser over a testdata file, line by line on stdout.
func cliFeed(t *testing.T, p Provider, file string) []Event {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	parser := p.NewParser()
	var evs []Event
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		evs = append(evs, parser.Line("stdout", line)...)
	}
	for _, ev := range evs {
		if ev.Kind == "" || ev.Time.IsZero() {
			t.Errorf("event without kind or time: %+v", ev)
		}
	}
	return evs
}

func cliKinds(evs []Event) []Kind {
	out := make([]Kind, len(evs))
	for i, ev := range evs {
		out[i] = ev.Kind
	}
	return out
}

func cliOfKind(evs []Event, k Kind) []Event {
	var out []Event
	for _, ev := range evs {
		if ev.Kind == k {
			out = append(out, ev)
		}
	}
	return out
}

// cliDaemonUsage accumulates usage as the daemon does (agents/manager.go):
// usage events add up, a result's usage replaces the sum.
func cliDaemonUsage(evs []Event) Usage {
	var u Usage
	for _, ev := range evs {
		switch {
		case ev.Kind == KindUsage && ev.Usage != nil:
			u.Add(*ev.Usage)
		case ev.Kind == KindResult && ev.Usage != nil:
			u = *ev.Usage
		}
	}
	return u
}

// cliUsageEvents sums the usage events alone.
func cliUsageEvents(evs []Event) Usage {
	var u Usage
	for _, ev := range cliOfKind(evs, KindUsage) {
		u.Add(*ev.Usage)
	}
	return u
}

// cliFakeExe writes an executable script into a temporary directory.
func cliFakeExe(t *testing.T) (exe, dir string) {
	t.Helper()
	dir = t.TempDir()
	exe = filepath.Join(dir, "fake-agent")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return exe, dir
}

func cliSeedFuzz(f *testing.F, dir string) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.jsonl"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in testdata/%s: %v", dir, err)
	}
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		for line := range bytes.SplitSeq(data, []byte("\n")) {
			f.Add(line)
		}
	}
	f.Add([]byte(`{"type":null}`))
	f.Add([]byte(`[1,2]`))
	f.Add([]byte(`{"type":"result","num_turns":1e400}`))
}

func cliFuzzParser(t *testing.T, p Provider, data []byte) {
	parser := p.NewParser()
	for line := range bytes.SplitSeq(data, []byte("\n")) {
		for _, stream := range []string{"stdout", "stderr"} {
			for _, ev := range parser.Line(stream, line) {
				if ev.Kind == "" {
					t.Fatalf("event without kind for %q", line)
				}
			}
		}
	}
}

func TestClaudeRegistered(t *testing.T) {
	p, err := Get("claude")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "claude" || !p.CanResume() || !strings.Contains(p.Install(), "npm install -g @anthropic-ai/claude-code") {
		t.Fatalf("claude provider: %q %v %q", p.Name(), p.CanResume(), p.Install())
	}
}

func TestClaudeParserSamples(t *testing.T) {
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
	writeRun := []Kind{S, C, U, R, X, U, F}
	deniedRun := []Kind{S, C, U, R, X, U, Q, F}
	tests := []struct {
		file  string
		kinds []Kind
		check func(t *testing.T, evs []Event)
	}{
		{"claude-2.1.197-bypass-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkClaudeWrite(t, evs, "4f9d539e-8eb0-4046-bdaf-d3c4b8f67f15", 0.002)
		}},
		{"claude-2.1.330-bypass-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkClaudeWrite(t, evs, "a4b6784f-a299-4d34-88d5-273267c718b0", 0.0016)
		}},
		{"claude-2.1.197-include-partial-messages.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkClaudeWrite(t, evs, "2148d57b-66fb-4de0-83ab-7abd2acd8517", 0.002)
		}},
		{"claude-2.1.197-default-mode-denied.jsonl", deniedRun, checkClaudeWriteDenied},
		{"claude-2.1.330-default-mode-denied.jsonl", deniedRun, checkClaudeWriteDenied},
		{"claude-2.1.197-acceptEdits-bash-denied.jsonl", deniedRun, func(t *testing.T, evs []Event) {
			const cmd = `python3 -c "open(\"py.txt\",\"w\").write(\"hi\")"`
			call := evs[1]
			if call.Tool != "Bash" || call.ToolKind != "command" || call.Command != cmd || call.Path != "" {
				t.Errorf("tool call: %+v", call)
			}
			res := evs[3]
			if res.Status != "denied" || !res.IsError || res.Tool != "Bash" || res.Text != "This command requires approval" {
				t.Errorf("tool result: %+v", res)
			}
			q := evs[6]
			if q.Tool != "Bash" || q.Command != cmd || q.Text != "Claude wanted to use Bash to run `"+cmd+"` but was not allowed" {
				t.Errorf("question: %+v", q)
			}
			if r := evs[7]; r.IsError || r.ErrorKind != "" || r.Text != "done via python" {
				t.Errorf("result: %+v", r)
			}
		}},
		{"claude-2.1.197-api-400.jsonl", []Kind{S, X, F}, func(t *testing.T, evs []Event) {
			checkClaudeFailed(t, evs[2], ErrorAPI, "API Error: 400 fake bad request", 1)
		}},
		{"claude-2.1.197-api-529.jsonl", []Kind{S, O, X, F}, func(t *testing.T, evs []Event) {
			if o := evs[1]; o.Text != "API 529 overloaded, retrying (attempt 1 of 1)" || o.Stream != "stdout" {
				t.Errorf("retry notice: %+v", o)
			}
			if !strings.HasPrefix(evs[2].Text, "API Error: 529 fake overloaded.") {
				t.Errorf("text: %+v", evs[2])
			}
			checkClaudeFailed(t, evs[3], ErrorAPI, evs[2].Text, 1)
		}},
		{"claude-2.1.197-connection-refused.jsonl", []Kind{S, X, F}, func(t *testing.T, evs []Event) {
			// api_error_status is null here: the "API Error" text decides.
			checkClaudeFailed(t, evs[2], ErrorAPI, "API Error: Unable to connect to API (ConnectionRefused)", 1)
		}},
		{"claude-2.1.197-error_max_turns.jsonl", []Kind{S, C, U, R, C, U, R, F}, func(t *testing.T, evs []Event) {
			for i, cmd := range map[int]string{1: "echo 1", 4: "echo 2"} {
				if c := evs[i]; c.Tool != "Bash" || c.ToolKind != "command" || c.Command != cmd {
					t.Errorf("call %d: %+v", i, c)
				}
			}
			for i, out := range map[int]string{3: "1", 6: "2"} {
				if r := evs[i]; r.Status != "ok" || r.IsError || r.Text != out || r.Command == "" {
					t.Errorf("result %d: %+v", i, r)
				}
			}
			r := checkClaudeFailed(t, evs[7], ErrorMaxTurns, "Reached maximum number of turns (2)", 3)
			if r.Usage == nil || r.Usage.CostUSD != 0.002 {
				t.Errorf("usage: %+v", r.Usage)
			}
		}},
		{"synthetic-multiblock-ask.jsonl", []Kind{S, U, X, C, C, R, R, C, Q, C, C, C, U, R, W, O, Q, F}, func(t *testing.T, evs []Event) {
			// One message printed as four lines (one per block) counts once.
			if got := cliUsageEvents(evs); got != (Usage{InputTokens: 30, OutputTokens: 13, CacheReadTokens: 20, CacheWriteTokens: 7}) {
				t.Errorf("usage events sum: %+v", got)
			}
			want := []struct{ tool, kind, path string }{
				{"Read", "read", "/home/dev/repo/a.go"}, {"MultiEdit", "edit", "/home/dev/repo/b.go"},
				{"AskUserQuestion", "other", ""}, {"Grep", "read", "/home/dev/repo"},
				{"NotebookEdit", "edit", "/home/dev/repo/n.ipynb"}, {"WebFetch", "other", ""},
			}
			calls := cliOfKind(evs, KindToolCall)
			if len(calls) != len(want) {
				t.Fatalf("calls: %+v", calls)
			}
			for i, w := range want {
				if c := calls[i]; c.Tool != w.tool || c.ToolKind != w.kind || c.Path != w.path {
					t.Errorf("call %d: %+v, want %+v", i, c, w)
				}
			}
			if r := evs[5]; r.Tool != "Read" || r.Status != "ok" || r.Text != "1\tpackage a" {
				t.Errorf("read result: %+v", r)
			}
			if r := evs[6]; r.Tool != "MultiEdit" || r.Status != "error" || !r.IsError {
				t.Errorf("edit result: %+v", r)
			}
			if q := evs[8]; q.Tool != "AskUserQuestion" || q.Text != "Which database should I use? (Postgres / SQLite)" {
				t.Errorf("ask: %+v", q)
			}
			if r := evs[13]; r.Tool != "AskUserQuestion" || r.Status != "denied" {
				t.Errorf("ask result: %+v", r)
			}
			if o := evs[15]; o.Text != "not json at all" || o.Stream != "stdout" {
				t.Errorf("output: %+v", o)
			}
			// The AskUserQuestion denial was asked already; the Edit
			// denial is listed twice but asked once.
			if q := evs[16]; q.Tool != "Edit" || q.Path != "/home/dev/repo/c.go" ||
				q.Text != "Claude wanted to use Edit on /home/dev/repo/c.go but was not allowed" {
				t.Errorf("denial: %+v", q)
			}
			r := checkClaudeFailed(t, evs[17], ErrorOther, "something broke", 2)
			if *r.Usage != (Usage{InputTokens: 30, OutputTokens: 99, CacheReadTokens: 20, CacheWriteTokens: 7, CostUSD: 0.0123}) {
				t.Errorf("result usage: %+v", r.Usage)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := cliFeed(t, claude{}, filepath.Join("claude", tt.file))
			if got := cliKinds(evs); !slices.Equal(got, tt.kinds) {
				t.Fatalf("kinds:\n got %v\nwant %v", got, tt.kinds)
			}
			tt.check(t, evs)
		})
	}
}

// checkClaudeWrite checks a run that wrote hello.txt: two messages of 100
// input tokens each (usage counted once per message), and the result's
// totals, which replace them.
func checkClaudeWrite(t *testing.T, evs []Event, session string, cost float64) {
	t.Helper()
	if s := evs[0]; s.SessionID != session || s.Text == "" {
		t.Errorf("session: %+v", s)
	}
	if c := evs[1]; c.Tool != "Write" || c.ToolKind != "write" || c.Path != "/home/dev/repo/hello.txt" || c.Command != "" {
		t.Errorf("tool call: %+v", c)
	}
	if r := evs[3]; r.Tool != "Write" || r.Status != "ok" || r.IsError || !strings.HasPrefix(r.Text, "File created successfully at: /home/dev/repo/hello.txt") {
		t.Errorf("tool result: %+v", r)
	}
	if x := evs[4]; x.Text != "Created hello.txt." {
		t.Errorf("text: %+v", x)
	}
	if got := cliUsageEvents(evs); got != (Usage{InputTokens: 200, OutputTokens: 2}) {
		t.Errorf("usage events sum %+v, want 200 in, 2 out", got)
	}
	r := evs[len(evs)-1]
	if r.Text != "Created hello.txt." || r.Turns != 2 || r.IsError || r.ErrorKind != "" || r.SessionID != session {
		t.Errorf("result: %+v", r)
	}
	want := Usage{InputTokens: 200, OutputTokens: 40, CostUSD: cost}
	if r.Usage == nil || *r.Usage != want {
		t.Errorf("result usage %+v, want %+v", r.Usage, want)
	}
	if got := cliDaemonUsage(evs); got != want {
		t.Errorf("daemon usage %+v, want %+v", got, want)
	}
}

func checkClaudeWriteDenied(t *testing.T, evs []Event) {
	t.Helper()
	if c := evs[1]; c.Tool != "Write" || c.ToolKind != "write" || c.Path != "/home/dev/repo/hello.txt" {
		t.Errorf("tool call: %+v", c)
	}
	r := evs[3]
	if r.Status != "denied" || !r.IsError || r.Tool != "Write" || r.Path != "/home/dev/repo/hello.txt" ||
		r.Text != "Claude requested permissions to write to /home/dev/repo/hello.txt, but you haven't granted it yet." {
		t.Errorf("tool result: %+v", r)
	}
	q := evs[6]
	if q.Tool != "Write" || q.Path != "/home/dev/repo/hello.txt" || q.Command != "" ||
		q.Text != "Claude wanted to use Write on /home/dev/repo/hello.txt but was not allowed" {
		t.Errorf("question: %+v", q)
	}
	if f := evs[7]; f.IsError || f.Turns != 2 || f.Usage == nil || f.Usage.InputTokens != 200 || f.Usage.OutputTokens != 40 {
		t.Errorf("result: %+v", f)
	}
}

func checkClaudeFailed(t *testing.T, r Event, kind, text string, turns int) Event {
	t.Helper()
	if r.Kind != KindResult || !r.IsError || r.ErrorKind != kind || r.Text != text || r.Turns != turns {
		t.Errorf("result: %+v, want error kind %q text %q turns %d", r, kind, text, turns)
	}
	return r
}

func TestClaudeParserLines(t *testing.T) {
	p := claude{}.NewParser()
	tests := []struct {
		stream, line string
		want         []Event
	}{
		{"stderr", "boom", []Event{{Kind: KindOutput, Stream: "stderr", Text: "boom"}}},
		{"stderr", `{"type":"result"}`, []Event{{Kind: KindOutput, Stream: "stderr", Text: `{"type":"result"}`}}},
		{"stdout", "plain text", []Event{{Kind: KindOutput, Stream: "stdout", Text: "plain text"}}},
		{"stdout", "   ", nil},
		{"stdout", `{"type":"stream_event","event":{"type":"message_stop"}}`, nil},
		{"stdout", `{"type":"system","subtype":"status","status":"requesting"}`, nil},
		{"stdout", `{"type":"rate_limit_event","x":1}`, []Event{{Kind: KindRaw, Raw: `{"type":"rate_limit_event","x":1}`}}},
		{"stdout", `{"type":5}`, []Event{{Kind: KindRaw, Raw: `{"type":5}`}}},
		{"stdout", `[1]`, []Event{{Kind: KindOutput, Stream: "stdout", Text: `[1]`}}},
		// A synthetic API error message carries zero usage: no usage event.
		{"stdout", `{"type":"assistant","message":{"id":"m","content":"not a list","usage":{"input_tokens":0}}}`, nil},
		{"stdout", `{"type":"result","subtype":"error_max_budget_usd","is_error":true,"num_turns":4}`,
			[]Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorBudget, Turns: 4}}},
		{"stdout", `{"type":"result","subtype":"success","is_error":true,"api_error_status":401,"result":"Invalid API key · Please run /login"}`,
			[]Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorAuth, Text: "Invalid API key · Please run /login"}}},
		{"stdout", `{"type":"result","subtype":"success","is_error":true,"api_error_status":"500","result":"boom"}`,
			[]Event{{Kind: KindResult, IsError: true, ErrorKind: ErrorAPI, Text: "boom"}}},
	}
	for _, tt := range tests {
		got := p.Line(tt.stream, []byte(tt.line))
		for i := range got {
			got[i].Time = time.Time{}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %s:\n got %+v\nwant %+v", tt.stream, tt.line, got, tt.want)
		}
	}
}

func TestClaudeCommand(t *testing.T) {
	exe, dir := cliFakeExe(t)
	base := []string{exe, "-p", "--output-format", "stream-json", "--verbose"}
	argv := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	tests := []struct {
		name string
		spec Spec
		task Task
		want []string
	}{
		{"plain", Spec{}, Task{Prompt: "fix it"}, argv("--", "fix it")},
		{"prompt starting with a dash", Spec{}, Task{Prompt: "-v is broken"}, argv("--", "-v is broken")},
		{"spec model", Spec{Model: "sonnet"}, Task{Prompt: "p"}, argv("--model", "sonnet", "--", "p")},
		{"task model wins", Spec{Model: "sonnet"}, Task{Prompt: "p", Model: "opus"}, argv("--model", "opus", "--", "p")},
		{"spec max turns", Spec{MaxTurns: 10}, Task{Prompt: "p"}, argv("--max-turns", "10", "--", "p")},
		{"task max turns wins", Spec{MaxTurns: 10}, Task{Prompt: "p", MaxTurns: 3}, argv("--max-turns", "3", "--", "p")},
		{"default mode", Spec{PermissionMode: "default"}, Task{Prompt: "p"}, argv("--permission-mode", "default", "--", "p")},
		{"acceptEdits", Spec{PermissionMode: "acceptEdits"}, Task{Prompt: "p"}, argv("--permission-mode", "acceptEdits", "--", "p")},
		{"plan", Spec{PermissionMode: "plan"}, Task{Prompt: "p"}, argv("--permission-mode", "plan", "--", "p")},
		{"bypass", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p"}, argv("--permission-mode", "bypassPermissions", "--", "p")},
		{"read-only overrides", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p", ReadOnly: true}, argv("--permission-mode", "plan", "--", "p")},
		{"read-only without mode", Spec{}, Task{Prompt: "p", ReadOnly: true}, argv("--permission-mode", "plan", "--", "p")},
		{"resume", Spec{}, Task{Prompt: "and now?", Resume: "sess-1"}, argv("--resume", "sess-1", "--", "and now?")},
		{"allowed tools", Spec{}, Task{Prompt: "p", AllowTools: []string{"Write", " ", "Bash(git *)"}}, argv("--allowedTools", "Write,Bash(git *)", "--", "p")},
		{"args expanded", Spec{Model: "haiku", Args: []string{"--append-system-prompt", "branch {branch} of {base}, model {model}, id {id}"}},
			Task{Prompt: "p", Branch: "agent/x", Base: "main", ID: "a1"},
			argv("--model", "haiku", "--append-system-prompt", "branch agent/x of main, model haiku, id a1", "--", "p")},
		{"everything", Spec{Model: "sonnet", MaxTurns: 7, PermissionMode: "acceptEdits", Args: []string{"--debug"}},
			Task{Prompt: "go", Model: "opus", Resume: "s", AllowTools: []string{"Edit"}},
			argv("--model", "opus", "--max-turns", "7", "--permission-mode", "acceptEdits", "--resume", "s", "--allowedTools", "Edit", "--debug", "--", "go")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Binary = exe
			tt.task.Worktree = dir
			got, env, err := claude{}.Command(tt.spec, tt.task)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("argv:\n got %q\nwant %q", got, tt.want)
			}
			if len(env) != 0 && !(os.Geteuid() == 0 && slices.Equal(env, []string{"IS_SANDBOX=1"})) {
				t.Errorf("env: %q", env)
			}
		})
	}
}

func TestClaudeCommandRelativeBinary(t *testing.T) {
	_, dir := cliFakeExe(t)
	argv, _, err := claude{}.Command(Spec{Binary: "./fake-agent"}, Task{Prompt: "p", Worktree: dir})
	if err != nil {
		t.Fatal(err)
	}
	if argv[0] != dir+"/./fake-agent" {
		t.Errorf("argv[0] = %q", argv[0])
	}
}

func TestClaudeCommandEnv(t *testing.T) {
	exe, dir := cliFakeExe(t)
	spec := Spec{Binary: exe, Env: map[string]string{"B": "2", "A": "1"}}
	_, env, err := claude{}.Command(spec, Task{Prompt: "p", Worktree: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(env, []string{"A=1", "B=2"}) {
		t.Errorf("env: %q", env)
	}

	spec.PermissionMode = "bypassPermissions"
	_, env, err = claude{}.Command(spec, Task{Prompt: "p", Worktree: dir})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "B=2"}
	if os.Geteuid() == 0 {
		want = []string{"A=1", "B=2", "IS_SANDBOX=1"}
	}
	if !slices.Equal(env, want) {
		t.Errorf("bypass env: %q, want %q", env, want)
	}

	// Read-only runs in plan mode: no sandbox flag needed.
	_, env, _ = claude{}.Command(spec, Task{Prompt: "p", Worktree: dir, ReadOnly: true})
	if slices.Contains(env, "IS_SANDBOX=1") {
		t.Errorf("read-only env: %q", env)
	}
	// The user's own setting is kept.
	spec.Env["IS_SANDBOX"] = "0"
	_, env, _ = claude{}.Command(spec, Task{Prompt: "p", Worktree: dir})
	if !slices.Equal(env, []string{"A=1", "B=2", "IS_SANDBOX=0"}) {
		t.Errorf("env with IS_SANDBOX set: %q", env)
	}
}

func TestClaudeCommandBadPermissionMode(t *testing.T) {
	exe, dir := cliFakeExe(t)
	for _, ro := range []bool{false, true} {
		_, _, err := claude{}.Command(Spec{Name: "rev", Binary: exe, PermissionMode: "yolo"}, Task{Prompt: "p", Worktree: dir, ReadOnly: ro})
		if err == nil {
			t.Fatal("no error for permission_mode yolo")
		}
		msg := err.Error()
		for _, s := range []string{`"yolo"`, `"rev"`, "default, acceptEdits, plan, bypassPermissions"} {
			if !strings.Contains(msg, s) {
				t.Errorf("error %q does not mention %s", msg, s)
			}
		}
	}
}

func TestClaudeCommandNotInstalled(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	dir := t.TempDir()
	for _, bin := range []string{"", "claude-missing", filepath.Join(dir, "nope"), "bin/nope"} {
		_, _, err := claude{}.Command(Spec{Binary: bin}, Task{Prompt: "p", Worktree: dir})
		if !errors.Is(err, ErrNotInstalled) {
			t.Fatalf("binary %q: error %v does not wrap ErrNotInstalled", bin, err)
		}
		if !strings.Contains(err.Error(), claude{}.Install()) {
			t.Errorf("binary %q: error %q lacks the install hint", bin, err)
		}
	}
}

func TestStreamJSONLenient(t *testing.T) {
	j, ok := parseStreamJSON([]byte(`{"a":{"b":[1,"x",{"c":true}]},"n":1e300,"s":"7"}`))
	if !ok {
		t.Fatal("not parsed")
	}
	if j.Get("a", "b", "c").v != nil || j.Get("nope", "x").Str() != "" || j.Get("a").Str() != "" {
		t.Error("missing keys should read as zero")
	}
	arr := j.Get("a", "b").Arr()
	if len(arr) != 3 || arr[0].Int() != 1 || arr[1].Str() != "x" || !arr[2].Get("c").Bool() {
		t.Errorf("array: %+v", arr)
	}
	if n := j.Get("n").Int(); n != 1<<53 {
		t.Errorf("clamped int: %d", n)
	}
	if streamInt(j.Get("s")) != 7 {
		t.Error("string number")
	}
	if _, ok := parseStreamJSON([]byte(`null`)); ok {
		t.Error("null parsed as an object")
	}
	if eventSnippet("\n\n  first  \nsecond") != "first" {
		t.Error("snippet")
	}
	long := strings.Repeat("é", 300)
	if s := eventSnippet(long); len([]rune(s)) != 200 || !strings.HasSuffix(s, "…") {
		t.Errorf("long snippet: %d runes", len([]rune(s)))
	}
	if math.IsNaN(streamJSON{math.NaN()}.Num()) {
		t.Error("NaN")
	}
}

func FuzzClaudeParser(f *testing.F) {
	cliSeedFuzz(f, "claude")
	f.Fuzz(func(t *testing.T, data []byte) { cliFuzzParser(t, claude{}, data) })
}
