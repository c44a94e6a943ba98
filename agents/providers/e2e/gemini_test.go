package e2e

import (
	"path/filepath"
	"testing"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// geminiAgent configures [agents.gemini]: the installed Gemini CLI with a
// private HOME whose .gemini/settings.json selects API-key auth (else the
// CLI exits 41) and turns folder trust off.
func geminiAgent(t *testing.T, fake *fakemodel.Server, permissionMode string) string {
	bin := requireCLI(t, "gemini", "gemini")
	home, env := privateHome(t)
	writeFile(t, filepath.Join(home, ".gemini", "settings.json"),
		`{"security":{"auth":{"selectedType":"gemini-api-key"},"folderTrust":{"enabled":false}}}`+"\n")
	env["GOOGLE_GEMINI_BASE_URL"] = fake.URL()
	env["GEMINI_API_KEY"] = "test"
	return agentTOML{name: "gemini", binary: bin, permissionMode: permissionMode, env: env}.String()
}

// Gemini CLI writes a file with write_file: the daemon commits it and
// records the final message and the tokens (its model routing calls
// included). A follow-up resumes the session: the fake server gets the
// earlier conversation back, and the second file lands on the branch too.
func TestGeminiWritesFileAndFollowUpResumes(t *testing.T) {
	t.Parallel()
	requireCLI(t, "gemini", "gemini")
	const task = "create hello.txt"
	const followUp = "now create second.txt"
	fake := startFake(t,
		fakemodel.Call(fakemodel.GeminiWriteFile("hello.txt", "hello from gemini\n")),
		fakemodel.Say("Created hello.txt."),
		fakemodel.Call(fakemodel.GeminiWriteFile("second.txt", "second\n")),
		fakemodel.Say("Created second.txt."),
	)
	repo := testenv.NewRepo(t, geminiAgent(t, fake, "bypassPermissions"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: task, Repo: repo.Dir, Agent: "gemini"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from gemini\n")
	if a.Result != "Created hello.txt." {
		t.Errorf("result %q", a.Result)
	}
	reqs := fake.TurnRequests()
	if len(reqs) != 2 || reqs[0].Cwd != a.Worktree {
		t.Fatalf("want 2 requests from the worktree %s:\n%s", a.Worktree, fake.Describe())
	}
	path := filepath.Join(a.Worktree, "hello.txt")
	d.requireEvent(a.ID, "tool_call write_file "+path, func(ev agents.Event) bool {
		return ev.Kind == providers.KindToolCall && ev.Tool == "write_file" && ev.Path == path
	})
	in, out := turnUsage(fake.Requests())
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
	mustContain(t, "the follow-up's first request", reqs[2].Body, task, "hello from gemini", followUp)
	in, out = turnUsage(fake.Requests())
	checkTokens(t, a, in, out)
}

// In the default approval mode a headless Gemini CLI may not write: the
// agent stops in needs_input with a question naming write_file; a
// follow-up that allows it resumes the session and the agent succeeds.
func TestGeminiDeniedWriteNeedsInputThenMessageResumes(t *testing.T) {
	t.Parallel()
	requireCLI(t, "gemini", "gemini")
	fake := startFake(t,
		fakemodel.Call(fakemodel.GeminiWriteFile("hello.txt", "hello from gemini\n")),
		fakemodel.Say("I was not allowed to write hello.txt."),
		fakemodel.Call(fakemodel.GeminiWriteFile("hello.txt", "hello from gemini\n")),
		fakemodel.Say("Created hello.txt."),
	)
	repo := testenv.NewRepo(t, geminiAgent(t, fake, "default"))
	d := startDaemon(t, fake)
	a := d.spawn(server.SpawnParams{Task: "create hello.txt", Repo: repo.Dir, Agent: "gemini"})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateNeedsInput)
	if len(a.Questions) == 0 || a.Questions[0].Tool != "write_file" {
		t.Fatalf("questions %+v, want one naming write_file", a.Questions)
	}
	a = d.message(server.MessageParams{ID: a.ID, Text: "Yes, write it.", AllowDenied: true})
	a = d.wait(a.ID)
	requireState(t, a, agents.StateSucceeded)
	checkCommitted(t, repo, a, "hello.txt", "hello from gemini\n")
	checkFakeUsed(t, fake)
}
