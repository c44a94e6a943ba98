package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// claudeAgent configures [agents.claude]: the installed Claude Code,
// talking to fake, with a private HOME. permissionMode may be empty (the
// CLI's default mode, which refuses writes in -p mode).
func claudeAgent(t *testing.T, fake *fakemodel.Server, permissionMode string) string {
	bin := requireCLI(t, "claude", "claude")
	_, env := privateHome(t)
	env["ANTHROPIC_BASE_URL"] = fake.URL()
	env["ANTHROPIC_API_KEY"] = "test"
	env["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] = "1"
	env["DISABLE_TELEMETRY"] = "1"
	env["DISABLE_AUTOUPDATER"] = "1"
	env["CLAUDE_CODE_MAX_RETRIES"] = "0"
	// IS_SANDBOX is not set here: the provider must add it for
	// bypassPermissions when the daemon runs as root.
	return agentTOML{name: "claude", binary: bin, permissionMode: permissionMode, env: env}.String()
}

const claudeContent = "hello from claude\n"

// Claude Code writes a file with its Write tool: the daemon commits it on
// the agent's branch and records the result, the tokens and the cost.
func TestClaudeWritesFile(t *testing.T) {
	t.Parallel()
	requireCLI(t, "claude", "claude")
	fake := startFake(t,
		fakemodel.Call(fakemodel.ClaudeWrite("hello.txt", claudeContent)),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, claudeAgent(t, fake, "bypassPermissions"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "claude"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", claudeContent)
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	if a.SessionID == "" {
		t.Error("no session id recorded")
	}
	checkTokens(t, a, 200, 40)
	if a.Usage.CostUSD <= 0 || a.Usage.CostEstimated {
		t.Errorf("cost %v (estimated %v), want the cost Claude Code reported", a.Usage.CostUSD, a.Usage.CostEstimated)
	}
	checkFakeUsed(t, fake)
	// Claude Code ran in the worktree; the log shows the Write and its
	// result.
	if reqs := fake.TurnRequests(); len(reqs) != 2 || reqs[0].Cwd != a.Worktree {
		t.Errorf("want 2 requests from the worktree %s:\n%s", a.Worktree, fake.Describe())
	}
	path := filepath.Join(a.Worktree, "hello.txt")
	d.requireEvent(a.ID, "tool_call Write "+path, func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolCall && ev.Tool == "Write" && ev.ToolKind == "write" && ev.Path == path
	})
	d.requireEvent(a.ID, "tool_result ok of Write", func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolResult && ev.Tool == "Write" && ev.Status == "ok"
	})
}

// In Claude Code's default permission mode the Write is refused: the agent
// stops in needs_input with a question naming the tool. A follow-up that
// allows the refused tools resumes the same session (the fake server gets
// the earlier conversation back) and the agent then succeeds.
func TestClaudeDeniedWriteNeedsInputThenMessageResumes(t *testing.T) {
	t.Parallel()
	requireCLI(t, "claude", "claude")
	const task = "create hello.txt with a greeting"
	const followUp = "Yes, you may write hello.txt."
	fake := startFake(t,
		// First run: the Write is refused, the model gives up.
		fakemodel.Call(fakemodel.ClaudeWrite("hello.txt", claudeContent)),
		fakemodel.Say("I was not allowed to write hello.txt."),
		// The follow-up, with Write allowed.
		fakemodel.Call(fakemodel.ClaudeWrite("hello.txt", claudeContent)),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, claudeAgent(t, fake, ""))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: task, Repo: repo.Dir, Agent: "claude"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateNeedsInput)
	if len(a.Questions) == 0 {
		t.Fatalf("needs_input without questions: %+v", a)
	}
	q := a.Questions[0]
	if q.Tool != "Write" || !strings.Contains(q.Text, "Write") || !strings.HasSuffix(q.Path, "/hello.txt") {
		t.Errorf("question %+v, want one naming the Write tool and hello.txt", q)
	}
	if !strings.Contains(a.Error, "Write") {
		t.Errorf("error %q does not say what the agent needs", a.Error)
	}
	if a.Diff.Files != 0 || a.Cleaned {
		t.Errorf("after the refusal: diff %+v, cleaned %v; want no change and the worktree kept", a.Diff, a.Cleaned)
	}
	if a.SessionID == "" {
		t.Fatal("no session id recorded: a follow-up cannot resume")
	}
	d.requireEvent(a.ID, "tool_result denied of Write", func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolResult && ev.Tool == "Write" && ev.Status == "denied"
	})
	d.requireEvent(a.ID, "question about Write", func(ev agents.Event) bool {
		return ev.Kind == providers.KindQuestion && ev.Tool == "Write"
	})
	first := a.Usage

	a = d.message(server.MessageParams{ID: a.ID, Text: followUp, AllowDenied: true})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", claudeContent)
	if a.Result != "Created hello.txt." || a.Runs != 2 {
		t.Errorf("result %q after %d runs, want the follow-up's answer after 2", a.Result, a.Runs)
	}
	checkFakeUsed(t, fake)
	reqs := fake.TurnRequests()
	if len(reqs) != 4 {
		t.Fatalf("%d conversation requests, want 4:\n%s", len(reqs), fake.Describe())
	}
	// The resumed session sends the whole earlier conversation: the task,
	// the refused Write (by its tool_use id) and the follow-up.
	mustContain(t, "the follow-up's first request", reqs[2].Body, task, reqs[0].ToolID, followUp)
	// Tokens and cost add up over both runs.
	checkTokens(t, a, 400, 80)
	if a.Usage.CostUSD <= first.CostUSD {
		t.Errorf("cost %v after the follow-up, %v before: the runs' costs do not add up", a.Usage.CostUSD, first.CostUSD)
	}
}

// A budget below what the run costs stops the agent as failed, saying so.
func TestClaudeBudgetExceeded(t *testing.T) {
	t.Parallel()
	requireCLI(t, "claude", "claude")
	// Claude Code prices the fake model's tokens as its default model's:
	// 100k input tokens cost far more than the budget below.
	fake := startFake(t,
		fakemodel.Call(fakemodel.ClaudeWrite("hello.txt", claudeContent)).WithUsage(100_000, 1_000),
		fakemodel.Say("Created hello.txt.").WithUsage(100_000, 1_000),
	)
	repo := testenv.NewRepo(t, claudeAgent(t, fake, "acceptEdits"))
	d := startDaemon(t, fake)
	const budget = 0.01
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "claude", BudgetUSD: budget})
	if a.BudgetUSD != budget {
		t.Errorf("spawned with budget %v, want %v", a.BudgetUSD, budget)
	}
	a = d.wait(a.ID)
	requireState(t, a, agents.StateFailed)
	if !strings.Contains(a.Error, "budget") {
		t.Errorf("error %q does not mention the budget", a.Error)
	}
	if a.Usage.CostUSD <= budget {
		t.Errorf("cost %v recorded, want more than the budget %v", a.Usage.CostUSD, budget)
	}
}

// An API error ends the agent as failed, with the API's message and the
// error kind in the record.
func TestClaudeAPIErrorFails(t *testing.T) {
	t.Parallel()
	requireCLI(t, "claude", "claude")
	fake := startFake(t, fakemodel.Fail(400, "fake bad request"))
	repo := testenv.NewRepo(t, claudeAgent(t, fake, "acceptEdits"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "claude"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateFailed)
	t.Logf("error: %s", a.Error)
	if !strings.Contains(a.Error, "fake bad request") || !strings.Contains(a.Error, providers.ErrorAPI) {
		t.Errorf("error %q, want the API's message and the kind %s", a.Error, providers.ErrorAPI)
	}
}
