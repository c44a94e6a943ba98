package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// codexAgent configures [agents.codex]: the installed Codex CLI with a
// private HOME and CODEX_HOME whose config.toml declares the fake server as
// a model provider (Codex ignores OPENAI_BASE_URL), without retries. The
// table of prices makes the daemon estimate the cost, which Codex does not
// report. model is what Codex is told to use: it offers its apply_patch
// tool only for models it knows.
func codexAgent(t *testing.T, fake *fakemodel.Server, model string) string {
	bin := requireCLI(t, "codex", "codex")
	home, env := privateHome(t)
	codexHome := filepath.Join(home, ".codex")
	writeFile(t, filepath.Join(codexHome, "config.toml"), fmt.Sprintf(`model = %s
model_provider = "fake"

[model_providers.fake]
name = "fake"
base_url = %s
env_key = "FAKE_API_KEY"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
`, tomlString(model), tomlString(fake.URL()+"/v1")))
	env["CODEX_HOME"] = codexHome
	env["FAKE_API_KEY"] = "test"
	return agentTOML{name: "codex", binary: bin, model: model, env: env}.String() +
		fmt.Sprintf("\n[prices.%s]\ninput = 1.0\noutput = 2.0\n", tomlString(model))
}

// Codex writes a file with its shell tool in the workspace-write sandbox:
// the daemon commits it, records the final message and the tokens, and
// estimates the cost from the price table. A follow-up resumes the thread
// (the fake server gets the earlier conversation back) and the tokens of
// both runs add up.
func TestCodexWritesFileAndFollowUpResumes(t *testing.T) {
	t.Parallel()
	requireCLI(t, "codex", "codex")
	const task = "create hello.txt"
	const followUp = "now add a second line"
	fake := startFake(t,
		fakemodel.Call(fakemodel.CodexExec(`printf 'hello from codex\n' > hello.txt`)),
		fakemodel.Say("Created hello.txt."),
		fakemodel.Call(fakemodel.CodexExec(`printf 'second line\n' >> hello.txt`)),
		fakemodel.Say("Added a second line."),
	)
	repo := testenv.NewRepo(t, codexAgent(t, fake, "fake-model"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: task, Repo: repo.Dir, Agent: "codex"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from codex\n")
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	if a.SessionID == "" {
		t.Fatal("no thread id recorded: a follow-up cannot resume")
	}
	reqs := fake.TurnRequests()
	if len(reqs) != 2 || reqs[0].Cwd != a.Worktree {
		t.Fatalf("want 2 requests from the worktree %s:\n%s", a.Worktree, fake.Describe())
	}
	d.requireEvent(a.ID, "tool_call exec_command writing hello.txt", func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolCall && ev.Tool == "exec_command" && ev.ToolKind == "command" && strings.Contains(ev.Command, "> hello.txt")
	})
	in, out := turnUsage(reqs)
	checkTokens(t, a, in, out)
	if want := (float64(in)*1.0 + float64(out)*2.0) / 1e6; !a.Usage.CostEstimated || !near(a.Usage.CostUSD, want) {
		t.Errorf("cost %v (estimated %v), want %v estimated from [prices]", a.Usage.CostUSD, a.Usage.CostEstimated, want)
	}

	a = d.message(server.MessageParams{ID: a.ID, Text: followUp})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	if got := testenv.Git(t, repo.Dir, "show", a.Branch+":hello.txt"); got != "hello from codex\nsecond line" {
		t.Errorf("hello.txt after the follow-up: %q", got)
	}
	if a.Result != "Added a second line." || a.Runs != 2 {
		t.Errorf("result %q after %d runs", a.Result, a.Runs)
	}
	checkFakeUsed(t, fake)
	reqs = fake.TurnRequests()
	if len(reqs) != 4 {
		t.Fatalf("%d conversation requests, want 4:\n%s", len(reqs), fake.Describe())
	}
	mustContain(t, "the follow-up's first request", reqs[2].Body, task, reqs[0].ToolID, followUp)
	// Codex reports the thread's running total, earlier runs included;
	// the daemon must count each request once.
	in, out = turnUsage(reqs)
	checkTokens(t, a, in, out)
}

// With a model it knows, Codex edits files with apply_patch: the daemon
// commits the file and logs the change with its path.
func TestCodexApplyPatch(t *testing.T) {
	t.Parallel()
	requireCLI(t, "codex", "codex")
	fake := startFake(t,
		fakemodel.Call(fakemodel.CodexApplyPatch("hello.txt", "hello via apply_patch\n")),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, codexAgent(t, fake, "gpt-5.5"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "codex"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello via apply_patch\n")
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	checkFakeUsed(t, fake)
	path := filepath.Join(a.Worktree, "hello.txt")
	d.requireEvent(a.ID, "tool_call apply_patch "+path, func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolCall && ev.Tool == "apply_patch" && ev.ToolKind == "write" && ev.Path == path
	})
	in, out := turnUsage(fake.TurnRequests())
	checkTokens(t, a, in, out)
}

func near(a, b float64) bool {
	d := a - b
	return d < 1e-12 && d > -1e-12
}

// An API error ends the agent as failed, with the API's message and the
// error kind in the record.
func TestCodexAPIErrorFails(t *testing.T) {
	t.Parallel()
	requireCLI(t, "codex", "codex")
	fake := startFake(t, fakemodel.Fail(400, "fake bad request"))
	repo := testenv.NewRepo(t, codexAgent(t, fake, "fake-model"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "codex"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateFailed)
	t.Logf("error: %s", a.Error)
	if !strings.Contains(a.Error, "fake bad request") || !strings.Contains(a.Error, providers.ErrorAPI) {
		t.Errorf("error %q, want the API's message and the kind %s", a.Error, providers.ErrorAPI)
	}
}
