package e2e

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// opencodeAgent configures [agents.opencode]: the installed OpenCode with
// private HOME and XDG directories, and a provider "fake" speaking the
// Anthropic API to the fake server, given in OPENCODE_CONFIG_CONTENT.
func opencodeAgent(t *testing.T, fake *fakemodel.Server, permissionMode string) string {
	bin := requireCLI(t, "opencode", "opencode")
	_, env := privateHome(t)
	cfg, err := json.Marshal(map[string]any{
		"$schema": "https://opencode.ai/config.json",
		"provider": map[string]any{"fake": map[string]any{
			"npm": "@ai-sdk/anthropic", "name": "Fake",
			"options": map[string]any{"baseURL": fake.URL() + "/v1", "apiKey": "test"},
			"models":  map[string]any{"fake-model": map[string]any{"name": "Fake Model"}},
		}},
		"model":      "fake/fake-model",
		"autoupdate": false,
		"share":      "disabled",
	})
	if err != nil {
		t.Fatal(err)
	}
	env["OPENCODE_CONFIG_CONTENT"] = string(cfg)
	env["OPENCODE_DISABLE_AUTOUPDATE"] = "1"
	env["OPENCODE_DISABLE_MODELS_FETCH"] = "1"
	return agentTOML{name: "opencode", binary: bin, model: "fake/fake-model", permissionMode: permissionMode, env: env}.String()
}

// OpenCode writes a file with its write tool: the daemon commits it and
// records the final message and the tokens of the conversation (OpenCode
// does not report its title request's). A follow-up resumes the session:
// the fake server gets the earlier conversation back, and the second file
// lands on the branch too.
func TestOpenCodeWritesFileAndFollowUpResumes(t *testing.T) {
	t.Parallel()
	requireCLI(t, "opencode", "opencode")
	const task = "create hello.txt"
	const followUp = "now create second.txt"
	fake := startFake(t,
		fakemodel.Call(fakemodel.OpenCodeWrite("hello.txt", "hello from opencode\n")),
		fakemodel.Say("Created hello.txt."),
		fakemodel.Call(fakemodel.OpenCodeWrite("second.txt", "second\n")),
		fakemodel.Say("Created second.txt."),
	)
	repo := testenv.NewRepo(t, opencodeAgent(t, fake, ""))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: task, Repo: repo.Dir, Agent: "opencode"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from opencode\n")
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	reqs := fake.TurnRequests()
	if len(reqs) != 2 || reqs[0].Cwd != a.Worktree {
		t.Fatalf("want 2 requests from the worktree %s:\n%s", a.Worktree, fake.Describe())
	}
	path := filepath.Join(a.Worktree, "hello.txt")
	d.requireEvent(a.ID, "tool_call write "+path, func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolCall && ev.Tool == "write" && ev.Path == path
	})
	in, out := turnUsage(reqs)
	checkTokens(t, a, in, out)
	if a.SessionID == "" {
		t.Fatal("no session id recorded: a follow-up cannot resume")
	}

	a = d.message(server.MessageParams{ID: a.ID, Text: followUp})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	if a.Result != "Created second.txt." || a.Runs != 2 {
		t.Errorf("result %q after %d runs", a.Result, a.Runs)
	}
	if got := testenv.Git(t, repo.Dir, "show", a.Branch+":second.txt"); got != "second" {
		t.Errorf("second.txt on the branch: %q", got)
	}
	checkFakeUsed(t, fake)
	reqs = fake.TurnRequests()
	if len(reqs) != 4 {
		t.Fatalf("%d conversation requests, want 4:\n%s", len(reqs), fake.Describe())
	}
	mustContain(t, "the follow-up's first request", reqs[2].Body, task, reqs[0].ToolID, followUp)
	in, out = turnUsage(reqs)
	checkTokens(t, a, in, out)
}

// With permission_mode "default" OpenCode may not edit without asking, and
// `opencode run` has nobody to ask: it rejects the write and ends the run
// there. The agent stops in needs_input with a question naming the write
// tool; a follow-up that allows it resumes the session and succeeds.
func TestOpenCodeDeniedWriteNeedsInputThenMessageResumes(t *testing.T) {
	t.Parallel()
	requireCLI(t, "opencode", "opencode")
	fake := startFake(t,
		// The rejected write ends the first run.
		fakemodel.Call(fakemodel.OpenCodeWrite("hello.txt", "hello from opencode\n")),
		fakemodel.Call(fakemodel.OpenCodeWrite("hello.txt", "hello from opencode\n")),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, opencodeAgent(t, fake, "default"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "opencode"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateNeedsInput)
	if len(a.Questions) == 0 || a.Questions[0].Tool != "write" {
		t.Fatalf("questions %+v, want one naming write", a.Questions)
	}
	a = d.message(server.MessageParams{ID: a.ID, Text: "Yes, write it.", AllowDenied: true})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from opencode\n")
	checkFakeUsed(t, fake)
}
