package server_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// These tests land agents' work with real git (a local bare repository as
// the remote) and the scripted test agent. Where the daemon writes the
// prompt itself (reviewers, pipeline steps, integrations), the agent's
// script comes from TESTAGENT_SCRIPT and "argv" records the prompt it was
// given, so the tests assert on what the agent received.

// scriptLine is a testagent "json" step argument: one line, no ';', no
// runs of spaces (the script is split on ';' and whitespace).
func scriptLine(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), ";") || strings.Contains(string(b), "  ") {
		t.Fatalf("script line must not contain ';' or double spaces: %s", b)
	}
	return string(b)
}

func call(t *testing.T, c *server.Client, method string, params, result any) error {
	t.Helper()
	return c.Call(testenv.Context(t, 30*time.Second), method, params, result)
}

// A review runs in a fresh context: the reviewer gets the task, the commit
// messages and the diff (never what the writer said), runs read-only on the
// writer's head, and its verdict and findings land on the writer's record.
func TestReviewAttachesFindingsFromFreshContext(t *testing.T) {
	d := startInProcess(t, time.Second)
	promptFile := filepath.Join(t.TempDir(), "review-prompt")
	result := "The greeting is wrong.\n```json\n" + `{"verdict":"request_changes","summary":"greeting is wrong","findings":[{"file":"hello.txt","line":1,"severity":"high","message":"say hello, not bye"}]}` + "\n```"
	verdict := scriptLine(t, map[string]any{"type": "result", "subtype": "success", "is_error": false, "num_turns": 1, "result": result, "session_id": "rev-1"})
	ta := testenv.TestAgent(t)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[agents.claude]\nbinary = %q\nenv = { TESTAGENT_SCRIPT = '''argv %s; json %s''' }\n", ta, promptFile, verdict))
	c := d.client(t)
	w := wait(t, c, spawn(t, c, repo.Dir, "write hello.txt bye; printenv BGAGENTS_WORKTREE").ID)
	if w.State != agents.StateSucceeded {
		t.Fatalf("writer %s: %s", w.State, w.Error)
	}
	var res server.AgentResult
	if err := call(t, c, server.MethodReview, server.ReviewParams{ID: w.Name, Agent: "claude"}, &res); err != nil {
		t.Fatal(err)
	}
	rev := res.Agent
	if !rev.ReadOnly || rev.ReviewOf != w.ID || rev.BaseCommit != w.Head || rev.Agent != "claude" {
		t.Fatalf("reviewer record: readOnly %v reviewOf %q base %s (writer head %s) agent %s", rev.ReadOnly, rev.ReviewOf, rev.BaseCommit, w.Head, rev.Agent)
	}
	if done := wait(t, c, rev.ID); done.State != agents.StateSucceeded {
		t.Fatalf("reviewer %s: %s", done.State, done.Error)
	}
	// The verdict lands on the writer's record (announced by agentChanged).
	var got *agents.Agent
	testenv.Eventually(t, 10*time.Second, "the review attached to the writer", func() bool {
		got = get(t, c, w.ID)
		return len(got.Reviews) == 1 && got.Reviews[0].FinishedAt != nil
	})
	r := got.Reviews[0]
	if r.ID != rev.ID || r.State != agents.StateSucceeded || r.Verdict != agents.VerdictRequestChanges || r.Summary != "greeting is wrong" || r.Head != w.Head {
		t.Errorf("review: %+v", r)
	}
	if len(r.Findings) != 1 || r.Findings[0].File != "hello.txt" || r.Findings[0].Line != 1 || r.Findings[0].Severity != "high" {
		t.Errorf("findings: %+v", r.Findings)
	}
	// What the reviewer received.
	data, err := os.ReadFile(promptFile)
	if err != nil {
		t.Fatalf("the reviewer recorded no argv: %v", err)
	}
	prompt := string(data)
	for _, want := range []string{"write hello.txt bye", "+bye", "hello.txt", "bgagents agent " + w.Name, `"verdict"`} {
		if !strings.Contains(prompt, want) {
			t.Errorf("the reviewer's prompt lacks %q:\n%s", want, prompt)
		}
	}
	if w.Result == "" || strings.Contains(prompt, "BGAGENTS_WORKTREE=") {
		t.Errorf("the reviewer saw the writer's conversation:\n%s", prompt)
	}
	if !strings.Contains(prompt, "--permission-mode\nplan") {
		t.Errorf("the reviewer did not run read-only: %s", prompt)
	}
	// Nothing to review while an agent works, or on a reviewer.
	if err := call(t, c, server.MethodReview, server.ReviewParams{ID: rev.ID}, nil); rpcCode(err) != -32602 {
		t.Errorf("review of a reviewer: %v", err)
	}
}

// Discarding (or merging) an agent cancels the review still running on it:
// nothing is left to judge.
func TestDiscardCancelsRunningReview(t *testing.T) {
	d := startInProcess(t, time.Second)
	gate := filepath.Join(t.TempDir(), "gate")
	ta := testenv.TestAgent(t)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[agents.claude]\nbinary = %q\nenv = { TESTAGENT_SCRIPT = '''waitfile %s''' }\n", ta, gate))
	c := d.client(t)
	w := wait(t, c, spawn(t, c, repo.Dir, "write hello.txt hi").ID)
	var res server.AgentResult
	if err := call(t, c, server.MethodReview, server.ReviewParams{ID: w.ID, Agent: "claude"}, &res); err != nil {
		t.Fatal(err)
	}
	rev := res.Agent
	waitNote(t, c, 10*time.Second, "reviewer running", agentChanged(rev.ID, agents.StateRunning))
	if err := call(t, c, server.MethodDiscard, server.DiscardParams{ID: w.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, c, rev.ID); got.State != agents.StateCancelled {
		t.Errorf("the review of a discarded agent is %s, want cancelled", got.State)
	}
}

func TestReviewRunsAutomaticallyWhenConfigured(t *testing.T) {
	d := startInProcess(t, time.Second)
	verdict := scriptLine(t, map[string]any{"type": "result", "subtype": "success", "is_error": false, "num_turns": 1, "result": "VERDICT: approve\nAll good.", "session_id": "rev-2"})
	ta := testenv.TestAgent(t)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[review]\nauto = true\nagent = \"claude\"\n\n[agents.claude]\nbinary = %q\nenv = { TESTAGENT_SCRIPT = '''json %s''' }\n", ta, verdict))
	c := d.client(t)
	w := wait(t, c, spawn(t, c, repo.Dir, "write a.txt fine").ID)
	testenv.Eventually(t, 20*time.Second, "an automatic review with a verdict", func() bool {
		rs := get(t, c, w.ID).Reviews
		return len(rs) == 1 && rs[0].Verdict == agents.VerdictApprove
	})
	// A reviewer is not reviewed itself, and an agent that changed nothing
	// gets no review.
	n := wait(t, c, spawn(t, c, repo.Dir, "say nothing").ID)
	if len(get(t, c, n.ID).Reviews) != 0 {
		t.Error("an unchanged agent was reviewed")
	}
}

// Two agents editing the same lines are reported as conflicting (the file
// named, on both records); merging one lands, merging the other is refused
// with the file named, and it then conflicts with the base instead.
func TestConflictsBetweenAgentsAndMergeRefused(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write README.md from a").ID)
	b := wait(t, c, spawn(t, c, repo.Dir, "write README.md from b").ID)
	other := wait(t, c, spawn(t, c, repo.Dir, "write other.txt unrelated").ID)
	conflictWith := func(x *agents.Agent, name string) []string {
		for _, cf := range get(t, c, x.ID).Conflicts {
			if cf.Name == name || (name == "" && cf.Base != "") {
				return cf.Files
			}
		}
		return nil
	}
	testenv.Eventually(t, 15*time.Second, "a and b reported as conflicting", func() bool {
		fa, fb := conflictWith(a, b.Name), conflictWith(b, a.Name)
		return len(fa) == 1 && fa[0] == "README.md" && len(fb) == 1 && fb[0] == "README.md"
	})
	if cs := get(t, c, other.ID).Conflicts; len(cs) != 0 {
		t.Errorf("an agent touching other files is reported as conflicting: %+v", cs)
	}
	if err := call(t, c, server.MethodMerge, server.MergeParams{ID: a.ID}, nil); err != nil {
		t.Fatalf("merge a: %v", err)
	}
	err := call(t, c, server.MethodMerge, server.MergeParams{ID: b.ID}, nil)
	if rpcCode(err) != server.CodeConflict || !strings.Contains(err.Error(), "README.md") {
		t.Fatalf("merging the second: %v, want a conflict naming README.md", err)
	}
	if get(t, c, b.ID).State != agents.StateSucceeded {
		t.Error("the refused merge changed the agent")
	}
	testenv.Eventually(t, 15*time.Second, "b conflicting with the base after a landed", func() bool {
		f := conflictWith(b, "")
		return len(f) == 1 && f[0] == "README.md" && conflictWith(b, a.Name) == nil
	})
	if got := get(t, c, a.ID); got.State != agents.StateMerged || len(got.Conflicts) != 0 {
		t.Errorf("merged agent: %s conflicts %+v", got.State, got.Conflicts)
	}
	// An agent spawned after main moved, touching another file, is not
	// reported as conflicting with b because of main's own changes.
	late := wait(t, c, spawn(t, c, repo.Dir, "write late.txt late").ID)
	// A branch moved outside bgagents (a commit on main that touches what
	// the unrelated agent changed) is noticed through the ref watch.
	if err := os.WriteFile(filepath.Join(repo.Dir, "other.txt"), []byte("from main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo.Dir, "add", "other.txt")
	testenv.Git(t, repo.Dir, "commit", "-qm", "other on main")
	testenv.Eventually(t, 15*time.Second, "the unrelated agent now conflicting with main", func() bool {
		f := conflictWith(other, "")
		return len(f) == 1 && f[0] == "other.txt"
	})
	if cs := get(t, c, late.ID).Conflicts; len(cs) != 0 {
		t.Errorf("an agent spawned after main moved is reported as conflicting: %+v", cs)
	}
	if f := conflictWith(b, late.Name); f != nil {
		t.Errorf("b reported as conflicting with %s: %v", late.Name, f)
	}
}

func TestPushToLocalBareRemote(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write pushed.txt hi").ID)
	err := call(t, c, server.MethodPush, server.PushParams{ID: a.ID}, nil)
	if rpcCode(err) != -32602 || !strings.Contains(err.Error(), `no remote "origin"`) || !strings.Contains(err.Error(), "git remote add") {
		t.Fatalf("push without a remote: %v", err)
	}
	bare := filepath.Join(t.TempDir(), "remote.git")
	testenv.Git(t, repo.Dir, "init", "-q", "--bare", bare)
	testenv.Git(t, repo.Dir, "remote", "add", "origin", bare)
	// An edit made in the worktree after the run is pushed too.
	if err := os.WriteFile(filepath.Join(a.Worktree, "late.txt"), []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var res server.AgentResult
	if err := call(t, c, server.MethodPush, server.PushParams{ID: a.Name}, &res); err != nil {
		t.Fatal(err)
	}
	p := res.Agent.Pushed
	if p == nil || p.Remote != "origin" || p.Branch != a.Branch {
		t.Fatalf("pushed: %+v", p)
	}
	if got := testenv.Git(t, bare, "rev-parse", "refs/heads/"+a.Branch); got != p.Commit {
		t.Errorf("remote branch at %s, want %s", got, p.Commit)
	}
	if got := testenv.Git(t, bare, "show", p.Commit+":late.txt"); got != "late" {
		t.Errorf("late edit on the remote: %q", got)
	}
}

// pathWithGitOnly makes PATH hold git and nothing else, so "gh" is not
// found whatever this machine has installed.
func pathWithGitOnly(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(git, filepath.Join(bin, "git")); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin)
}

func TestPullRequestWithoutGHSaysSo(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write pr.txt hi").ID)
	pathWithGitOnly(t)
	err := call(t, c, server.MethodPullRequest, server.PushParams{ID: a.ID}, nil)
	if rpcCode(err) != server.CodeExternal || !strings.Contains(err.Error(), "GitHub CLI (gh) is not installed") || !strings.Contains(err.Error(), "bgagents push "+a.Name) {
		t.Fatalf("pr without gh: %v", err)
	}
}

// gh cannot reach GitHub here, so this test puts a stand-in gh (a shell
// script: the only mock in these tests) on PATH. It checks what bgagents
// asks of gh: auth status, then pr create with the head, base, title and a
// body made of the task, the summary and the review; the URL it prints is
// recorded. The push before it is real (a local bare remote).
func TestPullRequestThroughGH(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write pr.txt hi; say Added pr.txt").ID)
	bare := filepath.Join(t.TempDir(), "remote.git")
	testenv.Git(t, repo.Dir, "init", "-q", "--bare", bare)
	testenv.Git(t, repo.Dir, "remote", "add", "origin", bare)
	pathWithGitOnly(t)
	bin := os.Getenv("PATH")
	record := filepath.Join(t.TempDir(), "gh-calls")
	gh := "#!/bin/sh\necho \"$@\" >> " + record + "\nif [ \"$1\" = auth ]; then exit 0; fi\nif [ \"$1\" = repo ]; then echo acme; exit 0; fi\nwhile IFS= read -r line; do echo \"$line\" >> " + record + "; done\necho https://github.com/acme/app/pull/42\n"
	if err := os.WriteFile(filepath.Join(bin, "gh"), []byte(gh), 0o755); err != nil {
		t.Fatal(err)
	}
	var res server.AgentResult
	if err := call(t, c, server.MethodPullRequest, server.PushParams{ID: a.ID, Draft: true}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Agent.PullRequest != "https://github.com/acme/app/pull/42" || res.Agent.Pushed == nil {
		t.Errorf("record after pr: url %q pushed %+v", res.Agent.PullRequest, res.Agent.Pushed)
	}
	calls, _ := os.ReadFile(record)
	for _, want := range []string{"auth status", "pr create --head " + a.Branch + " --title write pr.txt hi", "--base main", "--draft", "## Task", "## Summary", "Added pr.txt"} {
		if !strings.Contains(string(calls), want) {
			t.Errorf("gh was not asked %q:\n%s", want, calls)
		}
	}
	if got := get(t, c, a.ID).PullRequest; got != res.Agent.PullRequest {
		t.Errorf("stored pull request %q", got)
	}

	// Pushed to a fork (a GitHub remote of another owner than the
	// repository gh opens pull requests on, "acme"), the head is
	// owner:branch. insteadOf sends the push to a local bare repository.
	b := wait(t, c, spawn(t, c, repo.Dir, "write fork.txt hi").ID)
	fork := filepath.Join(t.TempDir(), "fork.git")
	testenv.Git(t, repo.Dir, "init", "-q", "--bare", fork)
	testenv.Git(t, repo.Dir, "remote", "add", "fork", "https://github.com/me/app.git")
	testenv.Git(t, repo.Dir, "config", "url."+fork+".insteadOf", "https://github.com/me/app.git")
	if err := os.Truncate(record, 0); err != nil {
		t.Fatal(err)
	}
	if err := call(t, c, server.MethodPullRequest, server.PushParams{ID: b.ID, Remote: "fork"}, &res); err != nil {
		t.Fatal(err)
	}
	calls, _ = os.ReadFile(record)
	if !strings.Contains(string(calls), "pr create --head me:"+b.Branch+" ") {
		t.Errorf("a pull request from a fork is not asked with owner:branch:\n%s", calls)
	}
	if got := testenv.Git(t, fork, "rev-parse", b.Branch); got == "" {
		t.Errorf("branch not pushed to the fork")
	}

	// A bad base is refused before anything is pushed.
	c2 := wait(t, c, spawn(t, c, repo.Dir, "write base.txt hi").ID)
	err := call(t, c, server.MethodPullRequest, server.PushParams{ID: c2.ID, Base: "bad..base"}, nil)
	if rpcCode(err) != jsonrpc2.InvalidParams || !strings.Contains(err.Error(), "base") {
		t.Fatalf("bad base: %v", err)
	}
	if got := get(t, c, c2.ID); got.Pushed != nil {
		t.Errorf("pushed before the base was checked: %+v", got.Pushed)
	}
}

// A pipeline of two: the second waits in the queue while the first works,
// then starts on the first's branch with its result in the prompt; a step
// after a failed agent fails with the reason.
func TestPipelineStartsSecondAfterFirstOnItsBranch(t *testing.T) {
	d := startInProcess(t, time.Second)
	promptFile := filepath.Join(t.TempDir(), "step-prompt")
	ta := testenv.TestAgent(t)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[agents.step]\ncommand = [%q, \"{prompt}\"]\nenv = { TESTAGENT_SCRIPT = '''argv %s; write step2.txt two''' }\n", ta, promptFile))
	c := d.client(t)
	gate := filepath.Join(t.TempDir(), "gate")
	first := spawn(t, c, repo.Dir, "waitfile "+gate+"; write step1.txt one; say STEP-ONE-RESULT")
	second := spawnWith(t, c, server.SpawnParams{Repo: repo.Dir, Task: "write the second step", Agent: "step", After: first.Name})
	if second.State != agents.StateQueued || second.After != first.ID || second.Base != first.Branch {
		t.Fatalf("second: state %s after %q base %q", second.State, second.After, second.Base)
	}
	waitNote(t, c, 10*time.Second, "first running", agentChanged(first.ID, agents.StateRunning))
	if got := get(t, c, second.ID); got.State != agents.StateQueued || got.BaseCommit != "" {
		t.Fatalf("second started before the first ended: %s", got.State)
	}
	writeFile(t, gate)
	f := wait(t, c, first.ID)
	s := wait(t, c, second.ID)
	if f.State != agents.StateSucceeded || s.State != agents.StateSucceeded {
		t.Fatalf("states: first %s, second %s (%s)", f.State, s.State, s.Error)
	}
	if s.StartedAt == nil || f.FinishedAt == nil || s.StartedAt.Before(*f.FinishedAt) {
		t.Errorf("second started %v, first finished %v", s.StartedAt, f.FinishedAt)
	}
	if s.Base != f.Branch || s.BaseCommit != f.Head {
		t.Errorf("second based on %s@%s, want %s@%s", s.Base, s.BaseCommit, f.Branch, f.Head)
	}
	if got := testenv.Git(t, repo.Dir, "show", s.Branch+":step1.txt"); got != "one" {
		t.Errorf("the second's branch lacks the first's work: %q", got)
	}
	prompt, _ := os.ReadFile(promptFile)
	if !strings.Contains(string(prompt), "STEP-ONE-RESULT") || !strings.Contains(string(prompt), f.Branch) {
		t.Errorf("the second's prompt lacks the first's result:\n%s", prompt)
	}
	// Merging the step lands in the first's branch (stacked).
	if err := call(t, c, server.MethodMerge, server.MergeParams{ID: s.ID}, nil); err != nil {
		t.Fatal(err)
	}
	if got := testenv.Git(t, repo.Dir, "show", f.Branch+":step2.txt"); got != "two" {
		t.Errorf("step 2 not merged into step 1's branch: %q", got)
	}

	bad := spawn(t, c, repo.Dir, "err broken; exit 4")
	after := spawnWith(t, c, server.SpawnParams{Repo: repo.Dir, Task: "never runs", Agent: "step", After: bad.ID})
	a := wait(t, c, after.ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, bad.Name) || !strings.Contains(a.Error, "failed") || a.StartedAt != nil {
		t.Errorf("step after a failed agent: %s %q", a.State, a.Error)
	}
	if err := call(t, c, server.MethodSpawn, server.SpawnParams{Repo: repo.Dir, Task: "x", After: bad.ID}, nil); rpcCode(err) != server.CodeInvalidState {
		t.Errorf("spawn after an already failed agent: %v", err)
	}
	if err := call(t, c, server.MethodSpawn, server.SpawnParams{Repo: repo.Dir, Task: "x", After: f.ID, Base: "main"}, nil); rpcCode(err) != -32602 {
		t.Errorf("after with base: %v", err)
	}
}

// A fan-out of three gives three agents in one group, each in its own
// worktree; integrating them gives one branch containing all three, made
// by an agent told which files conflicted.
func TestFanOutThenIntegrate(t *testing.T) {
	d := startInProcess(t, time.Second)
	promptFile := filepath.Join(t.TempDir(), "integrate-prompt")
	ta := testenv.TestAgent(t)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[agents.resolver]\ncommand = [%q, \"{prompt}\"]\nenv = { TESTAGENT_SCRIPT = '''argv %s; write stamp.txt resolved''' }\n\n[agents.lazy]\ncommand = [%q, \"{prompt}\"]\nenv = { TESTAGENT_SCRIPT = '''say left as it is''' }\n", ta, promptFile, ta))
	c := d.client(t)
	var res server.SpawnResult
	stamp := "stamp.txt"
	if err := call(t, c, server.MethodSpawn, server.SpawnParams{Repo: repo.Dir, Task: "write shared.txt same; stamp " + stamp, Variants: 3}, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Agents) != 3 || res.Agent.ID != res.Agents[0].ID {
		t.Fatalf("fan-out returned %d agents", len(res.Agents))
	}
	seen := map[string]bool{}
	var ids []string
	for i, a := range res.Agents {
		if a.Group == "" || a.Group != res.Agents[0].Group || a.Variant != i+1 || !strings.HasSuffix(a.Name, fmt.Sprintf("-v%d", i+1)) {
			t.Errorf("variant %d: group %q variant %d name %s", i+1, a.Group, a.Variant, a.Name)
		}
		done := wait(t, c, a.ID)
		if done.State != agents.StateSucceeded {
			t.Fatalf("variant %s: %s %s", a.Name, done.State, done.Error)
		}
		if _, err := os.Stat(filepath.Join(done.Worktree, stamp)); err != nil || seen[done.Worktree] {
			t.Errorf("variant %s has no worktree of its own: %v", a.Name, err)
		}
		seen[done.Worktree] = true
		ids = append(ids, a.Name)
	}
	var ir server.AgentResult
	if err := call(t, c, server.MethodIntegrate, server.IntegrateParams{IDs: ids, Agent: "resolver"}, &ir); err != nil {
		t.Fatal(err)
	}
	in := wait(t, c, ir.Agent.ID)
	if in.State != agents.StateSucceeded || len(in.Integrates) != 3 {
		t.Fatalf("integration: %s %q integrates %v", in.State, in.Error, in.Integrates)
	}
	for _, a := range res.Agents {
		if _, err := exec.Command("git", "-C", repo.Dir, "merge-base", "--is-ancestor", a.Branch, in.Branch).CombinedOutput(); err != nil {
			t.Errorf("the integration branch does not contain %s", a.Branch)
		}
	}
	if got := testenv.Git(t, repo.Dir, "show", in.Branch+":"+stamp); got != "resolved" {
		t.Errorf("conflict not resolved on the integration branch: %q", got)
	}
	if got := testenv.Git(t, repo.Dir, "show", in.Branch+":shared.txt"); got != "same" {
		t.Errorf("shared.txt on the integration branch: %q", got)
	}
	prompt, _ := os.ReadFile(promptFile)
	if !strings.Contains(string(prompt), "conflict markers") || !strings.Contains(string(prompt), stamp) || !strings.Contains(string(prompt), res.Agents[2].Branch) {
		t.Errorf("the integration prompt does not name the conflicts and branches:\n%s", prompt)
	}
	// An integration agent that leaves the conflict markers in fails.
	if err := call(t, c, server.MethodIntegrate, server.IntegrateParams{IDs: ids, Agent: "lazy"}, &ir); err != nil {
		t.Fatal(err)
	}
	if left := wait(t, c, ir.Agent.ID); left.State != agents.StateFailed || !strings.Contains(left.Error, "conflict markers are still in: "+stamp) {
		t.Errorf("integration leaving markers: %s %q", left.State, left.Error)
	}
	// Bad input: one agent, an unknown agent.
	if err := call(t, c, server.MethodIntegrate, server.IntegrateParams{IDs: ids[:1]}, nil); rpcCode(err) != -32602 {
		t.Errorf("integrate of one: %v", err)
	}
	if err := call(t, c, server.MethodIntegrate, server.IntegrateParams{IDs: []string{ids[0], "nosuchagent"}}, nil); rpcCode(err) != server.CodeAgentNotFound {
		t.Errorf("integrate with an unknown agent: %v", err)
	}
}
