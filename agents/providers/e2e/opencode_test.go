package e2e

import (
	"encoding/json"
	"testing"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// opencodeAgent configures [agents.opencode]: the installed OpenCode with
// private HOME and XDG directories, and a provider "fake" speaking the
// Anthropic API to the fake server, given in OPENCODE_CONFIG_CONTENT.
func opencodeAgent(t *testing.T, fake *fakemodel.Server) string {
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
	return agentTOML{name: "opencode", binary: bin, model: "fake/fake-model", env: env}.String()
}

// OpenCode writes a file with its write tool: the daemon commits it and
// records the final message and the tokens of the conversation (OpenCode
// does not report its title request's).
func TestOpenCodeWritesFile(t *testing.T) {
	t.Parallel()
	requireCLI(t, "opencode", "opencode")
	fake := startFake(t,
		fakemodel.Call(fakemodel.OpenCodeWrite("hello.txt", "hello from opencode\n")),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, opencodeAgent(t, fake))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "opencode"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from opencode\n")
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	checkFakeUsed(t, fake)
	reqs := fake.TurnRequests()
	if len(reqs) != 2 || reqs[0].Cwd != a.Worktree {
		t.Errorf("want 2 requests from the worktree %s:\n%s", a.Worktree, fake.Describe())
	}
	in, out := turnUsage(reqs)
	checkTokens(t, a, in, out)
}
