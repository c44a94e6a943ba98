package providers

import (
	"math"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOpencodeRegistered(t *testing.T) {
	p, err := Get("opencode")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "opencode" || !p.CanResume() || !strings.Contains(p.Install(), "npm install -g opencode-ai") {
		t.Fatalf("opencode provider: %q %v %q", p.Name(), p.CanResume(), p.Install())
	}
}

func TestOpencodeParserSamples(t *testing.T) {
	const (
		S = KindSession
		X = KindText
		C = KindToolCall
		R = KindToolResult
		U = KindUsage
		Q = KindQuestion
		F = KindResult
		O = KindOutput
	)
	const repo = "/home/dev/opencode.repo"
	writeRun := []Kind{S, C, R, U, X, U, F}
	step := Usage{InputTokens: 100, OutputTokens: 20}
	tests := []struct {
		file  string
		kinds []Kind
		check func(t *testing.T, evs []Event)
	}{
		{"opencode-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkOpencodeWrite(t, evs, "ses_e014597c5ffehH8PUip9B0EtOw")
		}},
		{"opencode-1.18.33-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkOpencodeWrite(t, evs, "ses_e0107d50affeStBzpOfFWj2l81")
		}},
		{"opencode-1.18.33-auto-write.jsonl", writeRun, func(t *testing.T, evs []Event) {
			checkOpencodeWrite(t, evs, "ses_e01074e65ffeaR584f5KHBBCFi")
		}},
		// A rejected permission stops the run: no step ends with "stop",
		// so there is no result; the daemon sees the question.
		{"opencode-1.18.33-edit-ask-rejected.jsonl", []Kind{S, C, R, Q, U}, func(t *testing.T, evs []Event) {
			if r := evs[2]; r.Tool != "write" || r.ToolKind != "write" || r.Path != repo+"/hello.txt" || r.Status != "denied" || !r.IsError ||
				r.Text != "The user rejected permission to use this specific tool call." {
				t.Errorf("tool result: %+v", r)
			}
			if q := evs[3]; q.Tool != "write" || q.Path != repo+"/hello.txt" ||
				q.Text != "OpenCode wanted to use write on "+repo+"/hello.txt but was not allowed" {
				t.Errorf("question: %+v", q)
			}
		}},
		{"opencode-1.18.33-bash-ask-rejected.jsonl", []Kind{S, C, R, Q, U}, func(t *testing.T, evs []Event) {
			const cmd = "touch made-by-bash.txt"
			if c := evs[1]; c.Tool != "bash" || c.ToolKind != "command" || c.Command != cmd || c.Path != "" {
				t.Errorf("tool call: %+v", c)
			}
			if q := evs[3]; q.Tool != "bash" || q.Command != cmd ||
				q.Text != "OpenCode wanted to use bash to run `"+cmd+"` but was not allowed" {
				t.Errorf("question: %+v", q)
			}
		}},
		{"opencode-1.18.33-plan-agent-write-denied.jsonl", []Kind{S, C, R, Q, U, X, U, F}, func(t *testing.T, evs []Event) {
			if r := evs[2]; r.Status != "denied" || !strings.HasPrefix(r.Text, "The user has specified a rule which prevents you") {
				t.Errorf("tool result: %+v", r)
			}
			if f := evs[7]; f.IsError || f.Text != "Created hello.txt." {
				t.Errorf("result: %+v", f)
			}
		}},
		{"opencode-1.18.33-resume.jsonl", []Kind{S, X, U, F}, func(t *testing.T, evs []Event) {
			if s := evs[0]; s.SessionID != "ses_e01074e65ffeaR584f5KHBBCFi" {
				t.Errorf("session: %+v", s)
			}
			if f := evs[3]; f.Text != "Created hello.txt." || *f.Usage != step {
				t.Errorf("result: %+v", f)
			}
		}},
		{"opencode-1.18.33-unknown-model-error.jsonl", []Kind{S, F}, func(t *testing.T, evs []Event) {
			if f := evs[1]; !f.IsError || f.ErrorKind != ErrorOther || f.Text != "Unexpected server error. Check server logs for details." ||
				f.SessionID != "ses_e010abb1affeqh8IKH5rz5Az3F" || f.Usage != nil {
				t.Errorf("result: %+v", f)
			}
		}},
		{"opencode-1.18.33-api-500.jsonl", []Kind{S, F}, func(t *testing.T, evs []Event) {
			if f := evs[1]; !f.IsError || f.ErrorKind != ErrorAPI || f.Text != "internal error" || f.SessionID != "ses_e0106d0c3ffebhSImCht0WcFOP" {
				t.Errorf("result: %+v", f)
			}
		}},
		{"synthetic-cost-cache.jsonl", []Kind{S, X, C, R, C, R, U, O, C, R, C, R, Q, X, U, F}, func(t *testing.T, evs []Event) {
			want := []struct{ tool, kind, path, cmd, status string }{
				{"read", "read", "/home/dev/repo/main.go", "", "ok"},
				{"bash", "command", "", "go test ./...", "error"},
				{"edit", "edit", "/home/dev/repo/main.go", "", "ok"},
				{"webfetch", "other", "", "", "denied"},
			}
			calls, results := cliOfKind(evs, KindToolCall), cliOfKind(evs, KindToolResult)
			for i, w := range want {
				c, r := calls[i], results[i]
				if c.Tool != w.tool || c.ToolKind != w.kind || c.Path != w.path || c.Command != w.cmd {
					t.Errorf("call %d: %+v, want %+v", i, c, w)
				}
				if r.Tool != w.tool || r.Status != w.status || r.IsError != (w.status != "ok") {
					t.Errorf("result %d: %+v, want %+v", i, r, w)
				}
			}
			if r := results[1]; r.Text != "Error: exit status 1" {
				t.Errorf("bash result: %+v", r)
			}
			if o := evs[7]; o.Text != "thinking: The test fails because of the missing import." {
				t.Errorf("reasoning: %+v", o)
			}
			first := *evs[6].Usage
			if first != (Usage{InputTokens: 1000, OutputTokens: 300, CacheReadTokens: 500, CacheWriteTokens: 1500, CostUSD: 0.0125}) {
				t.Errorf("first step usage: %+v", first)
			}
			f := evs[15]
			if f.Text != "Fixed the missing import." || f.IsError || f.SessionID != "ses_synthetic1" {
				t.Errorf("result: %+v", f)
			}
			want1 := Usage{InputTokens: 1050, OutputTokens: 450, CacheReadTokens: 2500, CacheWriteTokens: 1600, CostUSD: 0.0159}
			for name, got := range map[string]Usage{"result": *f.Usage, "usage events": cliUsageEvents(evs), "daemon": cliDaemonUsage(evs)} {
				if !usageNear(got, want1) {
					t.Errorf("%s usage %+v, want %+v", name, got, want1)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := cliFeed(t, opencode{}, filepath.Join("opencode", tt.file))
			if got := cliKinds(evs); !slices.Equal(got, tt.kinds) {
				t.Fatalf("kinds:\n got %v\nwant %v", got, tt.kinds)
			}
			tt.check(t, evs)
		})
	}
}

// usageNear compares usages, the cost to within a millionth of a dollar.
func usageNear(a, b Usage) bool {
	ca, cb := a.CostUSD, b.CostUSD
	a.CostUSD, b.CostUSD = 0, 0
	return a == b && math.Abs(ca-cb) < 1e-6
}

func checkOpencodeWrite(t *testing.T, evs []Event, session string) {
	t.Helper()
	if s := evs[0]; s.SessionID != session {
		t.Errorf("session: %+v", s)
	}
	if c := evs[1]; c.Tool != "write" || c.ToolKind != "write" || c.Path != "/home/dev/opencode.repo/hello.txt" || c.Command != "" {
		t.Errorf("tool call: %+v", c)
	}
	if r := evs[2]; r.Tool != "write" || r.Status != "ok" || r.IsError || r.Path != evs[1].Path || r.Text != "Wrote file successfully." {
		t.Errorf("tool result: %+v", r)
	}
	step := Usage{InputTokens: 100, OutputTokens: 20}
	if u := evs[3]; *u.Usage != step {
		t.Errorf("usage: %+v", u.Usage)
	}
	if x := evs[4]; x.Text != "Created hello.txt." {
		t.Errorf("text: %+v", x)
	}
	total := Usage{InputTokens: 200, OutputTokens: 40}
	f := evs[6]
	if f.Text != "Created hello.txt." || f.IsError || f.ErrorKind != "" || f.SessionID != session || f.Usage == nil || *f.Usage != total {
		t.Errorf("result: %+v", f)
	}
	if got := cliDaemonUsage(evs); got != total {
		t.Errorf("daemon usage %+v, want %+v", got, total)
	}
}

func TestOpencodeParserLines(t *testing.T) {
	p := opencode{}.NewParser()
	steps := []struct {
		stream, line string
		want         []Event
	}{
		{"stderr", "\x1b[93m! permission requested: edit (hello.txt); auto-rejecting",
			[]Event{{Kind: KindOutput, Stream: "stderr", Text: "\x1b[93m! permission requested: edit (hello.txt); auto-rejecting"}}},
		{"stdout", "", nil},
		{"stdout", "Error: boom", []Event{{Kind: KindOutput, Stream: "stdout", Text: "Error: boom"}}},
		{"stdout", `{"type":"step_start","sessionID":"s1"}`, []Event{{Kind: KindSession, SessionID: "s1"}}},
		// The session is announced once.
		{"stdout", `{"type":"step_start","sessionID":"s1"}`, nil},
		{"stdout", `{"type":"step_start","sessionID":"s2"}`, nil},
		{"stdout", `{"type":"file","sessionID":"s1","part":{}}`, []Event{{Kind: KindRaw, Raw: `{"type":"file","sessionID":"s1","part":{}}`}}},
		{"stdout", `{"type":"text","part":{"text":"  "}}`, nil},
		{"stdout", `{"type":"step_finish","part":{"reason":"tool-calls","tokens":{"input":0,"output":0}}}`, nil},
		{"stdout", `{"type":"error","sessionID":"s1","error":{"name":"APIError","data":{"message":"Overloaded","statusCode":529,"isRetryable":true}}}`,
			[]Event{{Kind: KindResult, Text: "Overloaded", SessionID: "s1", IsError: true, ErrorKind: ErrorAPI}}},
		{"stdout", `{"type":"error","error":{"name":"APIError","data":{"message":"invalid x-api-key","statusCode":401}}}`,
			[]Event{{Kind: KindResult, Text: "invalid x-api-key", SessionID: "s1", IsError: true, ErrorKind: ErrorAuth}}},
		{"stdout", `{"type":"error","error":{"name":"ProviderAuthError","data":{"providerID":"anthropic","message":"no key"}}}`,
			[]Event{{Kind: KindResult, Text: "no key", SessionID: "s1", IsError: true, ErrorKind: ErrorAuth}}},
		{"stdout", `{"type":"error","error":{"name":"MessageAbortedError"}}`,
			[]Event{{Kind: KindResult, Text: "MessageAbortedError", SessionID: "s1", IsError: true, ErrorKind: ErrorOther}}},
		{"stdout", `{"type":"step_finish","part":{"reason":"stop","tokens":{"input":5,"output":1,"cache":{"read":2,"write":3}},"cost":0.5}}`, []Event{
			{Kind: KindUsage, Usage: &Usage{InputTokens: 5, OutputTokens: 1, CacheReadTokens: 2, CacheWriteTokens: 3, CostUSD: 0.5}},
			{Kind: KindResult, SessionID: "s1", Usage: &Usage{InputTokens: 5, OutputTokens: 1, CacheReadTokens: 2, CacheWriteTokens: 3, CostUSD: 0.5}},
		}},
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
}

func TestOpencodeCommand(t *testing.T) {
	exe, dir := cliFakeExe(t)
	base := []string{exe, "run", "--format", "json"}
	argv := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	const perm = "OPENCODE_PERMISSION="
	tests := []struct {
		name string
		spec Spec
		task Task
		want []string
		env  []string
	}{
		{"plain", Spec{}, Task{Prompt: "fix it"}, argv("--", "fix it"), nil},
		{"prompt starting with a dash", Spec{}, Task{Prompt: "-v is broken"}, argv("--", "-v is broken"), nil},
		{"spec model", Spec{Model: "anthropic/claude-sonnet-4"}, Task{Prompt: "p"}, argv("-m", "anthropic/claude-sonnet-4", "--", "p"), nil},
		{"task model wins", Spec{Model: "a/b"}, Task{Prompt: "p", Model: "c/d"}, argv("-m", "c/d", "--", "p"), nil},
		{"max turns ignored", Spec{MaxTurns: 4}, Task{Prompt: "p", MaxTurns: 2}, argv("--", "p"), nil},
		{"default mode", Spec{PermissionMode: "default"}, Task{Prompt: "p"}, argv("--", "p"), []string{perm + `{"bash":"ask","edit":"ask"}`}},
		{"acceptEdits", Spec{PermissionMode: "acceptEdits"}, Task{Prompt: "p"}, argv("--", "p"), []string{perm + `{"bash":"ask"}`}},
		{"plan", Spec{PermissionMode: "plan"}, Task{Prompt: "p"}, argv("--agent", "plan", "--", "p"), nil},
		{"bypass", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p"}, argv("--auto", "--", "p"), nil},
		{"read-only overrides", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p", ReadOnly: true}, argv("--agent", "plan", "--", "p"), nil},
		{"resume", Spec{}, Task{Prompt: "and now?", Resume: "ses_1"}, argv("--session", "ses_1", "--", "and now?"), nil},
		{"allowed tools", Spec{PermissionMode: "default"}, Task{Prompt: "p", AllowTools: []string{"write", " ", "bash", "webfetch"}},
			argv("--", "p"), []string{perm + `{"bash":"allow","edit":"allow","webfetch":"allow"}`}},
		{"agent's own permissions win over the mode", Spec{PermissionMode: "default", Env: map[string]string{"OPENCODE_PERMISSION": `{"bash":{"rm *":"deny"}}`, "X": "1"}},
			Task{Prompt: "p", AllowTools: []string{"edit"}}, argv("--", "p"), []string{perm + `{"bash":{"rm *":"deny"},"edit":"allow"}`, "X=1"}},
		{"agent's permissions that are not JSON are kept", Spec{Env: map[string]string{"OPENCODE_PERMISSION": `nope`}},
			Task{Prompt: "p", AllowTools: []string{"edit"}}, argv("--", "p"), []string{perm + "nope"}},
		{"args expanded", Spec{Model: "a/b", Args: []string{"--title", "{id} on {branch}", "--variant=high"}},
			Task{Prompt: "p", ID: "x1", Branch: "bgagents/x"}, argv("-m", "a/b", "--title", "x1 on bgagents/x", "--variant=high", "--", "p"), nil},
		{"everything", Spec{Model: "a/b", PermissionMode: "acceptEdits", Args: []string{"--thinking"}},
			Task{Prompt: "go", Resume: "ses_2", AllowTools: []string{"bash"}},
			argv("-m", "a/b", "--session", "ses_2", "--thinking", "--", "go"), []string{perm + `{"bash":"allow"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Binary = exe
			tt.task.Worktree = dir
			got, env, err := opencode{}.Command(tt.spec, tt.task)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("argv:\n got %q\nwant %q", got, tt.want)
			}
			if !slices.Equal(env, tt.env) {
				t.Errorf("env:\n got %q\nwant %q", env, tt.env)
			}
		})
	}
}

func TestOpencodeCommandBadPermissionMode(t *testing.T) {
	exe, dir := cliFakeExe(t)
	_, _, err := opencode{}.Command(Spec{Name: "o", Binary: exe, PermissionMode: "auto"}, Task{Prompt: "p", Worktree: dir})
	if err == nil || !strings.Contains(err.Error(), `"auto"`) || !strings.Contains(err.Error(), "default, acceptEdits, plan, bypassPermissions") {
		t.Fatalf("error: %v", err)
	}
}

func TestOpencodeCommandNotInstalled(t *testing.T) {
	checkNotInstalled(t, opencode{})
}

func FuzzOpencodeParser(f *testing.F) {
	cliSeedFuzz(f, "opencode")
	f.Add([]byte(`{"type":"tool_use","part":{"state":{"status":"error","error":5}}}`))
	f.Add([]byte(`{"type":"step_finish","part":{"reason":"stop","tokens":{"input":1e400},"cost":"x"}}`))
	f.Fuzz(func(t *testing.T, data []byte) { cliFuzzParser(t, opencode{}, data) })
}
