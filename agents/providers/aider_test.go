package providers

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestAiderRegistered(t *testing.T) {
	p, err := Get("aider")
	if err != nil {
		t.Fatal(err)
	}
	if p.Name() != "aider" || p.CanResume() || !strings.Contains(p.Install(), "aider-install") || !strings.Contains(p.Install(), "aider-chat") {
		t.Fatalf("aider provider: %q %v %q", p.Name(), p.CanResume(), p.Install())
	}
}

func TestAiderParserSamples(t *testing.T) {
	tests := []struct {
		file  string
		calls []string
		usage []Usage
		last  string
	}{
		{"aider-edit-commit.txt", []string{"ticket_cleaner/report.py", "tests/test_report.py"}, []Usage{
			{InputTokens: 3000, OutputTokens: 42, CostUSD: 0.0063},
			{InputTokens: 1400, OutputTokens: 1300, CacheReadTokens: 8500, CacheWriteTokens: 2100, CostUSD: 0.02},
		}, "Commit 1a2b3c4 feat: Add category filter to the report"},
		{"aider-no-cost-error.txt", []string{"hello.txt"}, []Usage{
			{InputTokens: 116, OutputTokens: 30},
			{InputTokens: 1234, OutputTokens: 1_500_000},
		}, "Retrying in 0.2 seconds..."},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs := cliFeed(t, aider{}, filepath.Join("aider", tt.file))
			var calls []string
			var usage []Usage
			for _, ev := range evs {
				switch ev.Kind {
				case KindToolCall:
					if ev.Tool != "edit" || ev.ToolKind != "edit" {
						t.Errorf("tool call: %+v", ev)
					}
					calls = append(calls, ev.Path)
				case KindUsage:
					usage = append(usage, *ev.Usage)
				case KindOutput:
					if ev.Stream != "stdout" || strings.TrimSpace(ev.Text) == "" {
						t.Errorf("output: %+v", ev)
					}
				default:
					// No result: the daemon takes the last output line.
					t.Errorf("unexpected event: %+v", ev)
				}
			}
			if !slices.Equal(calls, tt.calls) {
				t.Errorf("edits %q, want %q", calls, tt.calls)
			}
			if !reflect.DeepEqual(usage, tt.usage) {
				t.Errorf("usage %+v, want %+v", usage, tt.usage)
			}
			var sum Usage
			for _, u := range tt.usage {
				sum.Add(u)
			}
			if got := cliDaemonUsage(evs); !usageNear(got, sum) {
				t.Errorf("daemon usage %+v, want %+v", got, sum)
			}
			out := cliOfKind(evs, KindOutput)
			if last := out[len(out)-1]; last.Text != tt.last {
				t.Errorf("last output %q, want %q", last.Text, tt.last)
			}
		})
	}
}

func TestAiderParserLines(t *testing.T) {
	p := aider{}.NewParser()
	tests := []struct {
		stream, line string
		want         []Event
	}{
		{"stdout", "", nil},
		{"stdout", "   \r", nil},
		{"stderr", "Warning: model not found\r", []Event{{Kind: KindOutput, Stream: "stderr", Text: "Warning: model not found"}}},
		// On stderr it is not Aider's own report.
		{"stderr", "Applied edit to x.go", []Event{{Kind: KindOutput, Stream: "stderr", Text: "Applied edit to x.go"}}},
		{"stdout", "Applied edit to dir with space/x.go\r", []Event{{Kind: KindToolCall, Tool: "edit", ToolKind: "edit", Path: "dir with space/x.go"}}},
		{"stdout", "Did not apply edit to x.go (--dry-run)", []Event{{Kind: KindOutput, Stream: "stdout", Text: "Did not apply edit to x.go (--dry-run)"}}},
		{"stdout", "Commit abc1234 fix: handle nil", []Event{{Kind: KindOutput, Stream: "stdout", Text: "Commit abc1234 fix: handle nil"}}},
		{"stdout", "Tokens: 9.6k sent, 89 received. Cost: $0.05 message, $0.05 session.",
			[]Event{{Kind: KindUsage, Usage: &Usage{InputTokens: 9600, OutputTokens: 89, CostUSD: 0.05}}}},
		{"stdout", "Tokens: 15k sent, 2.1k cache write, 8.2k cache read, 45 received.",
			[]Event{{Kind: KindUsage, Usage: &Usage{InputTokens: 4700, OutputTokens: 45, CacheReadTokens: 8200, CacheWriteTokens: 2100}}}},
		// Rounded figures never make the input negative.
		{"stdout", "Tokens: 1.0k sent, 1.0k cache hit, 2 received.",
			[]Event{{Kind: KindUsage, Usage: &Usage{OutputTokens: 2, CacheReadTokens: 1000}}}},
		{"stdout", "Tokens: lots sent, 2 received.", []Event{{Kind: KindOutput, Stream: "stdout", Text: "Tokens: lots sent, 2 received."}}},
	}
	for _, tt := range tests {
		got := p.Line(tt.stream, []byte(tt.line))
		for i := range got {
			got[i].Time = time.Time{}
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s %q:\n got %+v\nwant %+v", tt.stream, tt.line, got, tt.want)
		}
	}
	for s, want := range map[string]int64{"345": 345, "1,234": 1234, "3.1k": 3100, "12K": 12000, "1.5M": 1_500_000, "": 0, "x": 0, "1e999k": 0} {
		if got := aiderCount(s); got != want {
			t.Errorf("aiderCount(%q) = %d, want %d", s, got, want)
		}
	}
}

func TestAiderCommand(t *testing.T) {
	exe, dir := cliFakeExe(t)
	base := []string{exe, "--yes-always", "--no-pretty", "--no-stream", "--no-fancy-input",
		"--no-check-update", "--no-show-release-notes", "--no-analytics"}
	argv := func(extra ...string) []string { return append(slices.Clone(base), extra...) }
	tests := []struct {
		name string
		spec Spec
		task Task
		want []string
	}{
		{"plain", Spec{}, Task{Prompt: "fix it"}, argv("--message=fix it")},
		{"prompt starting with a dash", Spec{}, Task{Prompt: "-v is broken"}, argv("--message=-v is broken")},
		{"spec model", Spec{Model: "sonnet"}, Task{Prompt: "p"}, argv("--model", "sonnet", "--message=p")},
		{"task model wins", Spec{Model: "a"}, Task{Prompt: "p", Model: "b"}, argv("--model", "b", "--message=p")},
		{"max turns ignored", Spec{MaxTurns: 3}, Task{Prompt: "p", MaxTurns: 2}, argv("--message=p")},
		{"default mode", Spec{PermissionMode: "default"}, Task{Prompt: "p"}, argv("--message=p")},
		{"acceptEdits", Spec{PermissionMode: "acceptEdits"}, Task{Prompt: "p"}, argv("--message=p")},
		{"bypass", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p"}, argv("--message=p")},
		{"plan", Spec{PermissionMode: "plan"}, Task{Prompt: "p"}, argv("--chat-mode", "ask", "--message=p")},
		{"read-only overrides", Spec{PermissionMode: "bypassPermissions"}, Task{Prompt: "p", ReadOnly: true}, argv("--chat-mode", "ask", "--message=p")},
		// No session to resume, no tool permissions to grant.
		{"follow-up", Spec{}, Task{Prompt: "and now?", Resume: "ignored", AllowTools: []string{"x"}}, argv("--message=and now?")},
		{"args expanded", Spec{Model: "m", Args: []string{"--restore-chat-history", "--read", "{worktree}/CONVENTIONS.md", "--weak-model={model}"}},
			Task{Prompt: "p"}, argv("--model", "m", "--restore-chat-history", "--read", dir+"/CONVENTIONS.md", "--weak-model=m", "--message=p")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.Binary = exe
			tt.task.Worktree = dir
			got, env, err := aider{}.Command(tt.spec, tt.task)
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
	_, env, err := aider{}.Command(Spec{Binary: exe, Env: map[string]string{"OPENAI_API_KEY": "k", "AIDER_DARK_MODE": "1"}}, Task{Prompt: "p", Worktree: dir})
	if err != nil || !slices.Equal(env, []string{"AIDER_DARK_MODE=1", "OPENAI_API_KEY=k"}) {
		t.Errorf("env %q, err %v", env, err)
	}
}

func TestAiderCommandBadPermissionMode(t *testing.T) {
	exe, dir := cliFakeExe(t)
	_, _, err := aider{}.Command(Spec{Name: "a", Binary: exe, PermissionMode: "auto"}, Task{Prompt: "p", Worktree: dir})
	if err == nil || !strings.Contains(err.Error(), `"auto"`) || !strings.Contains(err.Error(), "default, acceptEdits, plan, bypassPermissions") {
		t.Fatalf("error: %v", err)
	}
}

func TestAiderCommandNotInstalled(t *testing.T) {
	checkNotInstalled(t, aider{})
}

func FuzzAiderParser(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "aider", "*.txt"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no fixtures in testdata/aider: %v", err)
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
	f.Add([]byte("Tokens: 99999999999999999999999M sent, 1e5k cache hit, .k received. Cost: $1e999 message, $x session."))
	f.Add([]byte("Applied edit to \xff\xfe"))
	f.Fuzz(func(t *testing.T, data []byte) { cliFuzzParser(t, aider{}, data) })
}
