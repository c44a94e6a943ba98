package e2e

import (
	"path/filepath"
	"testing"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// geminiAgent configures [agents.gemini]: the installed Gemini CLI with a
// private HOME whose .gemini/settings.json selects API-key auth (else the
// CLI exits 41) and turns folder trust off.
func geminiAgent(t *testing.T, fake *fakemodel.Server) string {
	bin := requireCLI(t, "gemini", "gemini")
	home, env := privateHome(t)
	writeFile(t, filepath.Join(home, ".gemini", "settings.json"),
		`{"security":{"auth":{"selectedType":"gemini-api-key"},"folderTrust":{"enabled":false}}}`+"\n")
	env["GOOGLE_GEMINI_BASE_URL"] = fake.URL()
	env["GEMINI_API_KEY"] = "test"
	return agentTOML{name: "gemini", binary: bin, env: env}.String()
}

// Gemini CLI writes a file with write_file: the daemon commits it and
// records the final message and the tokens (the routing call's included).
func TestGeminiWritesFile(t *testing.T) {
	t.Parallel()
	requireCLI(t, "gemini", "gemini")
	fake := startFake(t,
		fakemodel.Call(fakemodel.GeminiWriteFile("hello.txt", "hello from gemini\n")),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, geminiAgent(t, fake))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "gemini"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from gemini\n")
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	checkFakeUsed(t, fake)
	reqs := fake.TurnRequests()
	if len(reqs) != 2 || reqs[0].Cwd != a.Worktree {
		t.Errorf("want 2 requests from the worktree %s:\n%s", a.Worktree, fake.Describe())
	}
	// Gemini CLI counts every call, its model routing included.
	in, out := turnUsage(fake.Requests())
	checkTokens(t, a, in, out)
}
