package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

func rpcCode(err error) jsonrpc2.Code {
	var re *jsonrpc2.Error
	if errors.As(err, &re) {
		return re.Code
	}
	return 0
}

// The whole path a user takes: spawn → the agent runs in its worktree →
// its change is committed on its branch → diff → merge into main.
func TestSpawnFinishCommitDiffMerge(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := spawn(t, c, repo.Dir, "write hello.txt hello from the agent; say all done")
	if a.State != agents.StateQueued || a.Branch != "bgagents/"+a.Name || a.BaseCommit == "" || a.Base != "main" {
		t.Fatalf("spawned record: %+v", a)
	}
	a = wait(t, c, a.ID)
	if a.State != agents.StateSucceeded {
		t.Fatalf("state %s (%s), want succeeded", a.State, a.Error)
	}
	if a.Result != "all done" || a.ExitCode == nil || *a.ExitCode != 0 {
		t.Errorf("result %q exit %v", a.Result, a.ExitCode)
	}
	if a.Diff.Commits != 1 || a.Diff.Files != 1 || a.Diff.Additions != 1 {
		t.Errorf("diff stat %+v, want 1 commit, 1 file, +1", a.Diff)
	}
	// The commit is on the agent's branch; main is untouched.
	if got := testenv.Git(t, repo.Dir, "show", a.Branch+":hello.txt"); got != "hello from the agent" {
		t.Errorf("branch content %q", got)
	}
	if _, err := os.Stat(filepath.Join(repo.Dir, "hello.txt")); err == nil {
		t.Fatal("the spawn modified the main checkout")
	}
	var diff server.DiffResult
	if err := c.Call(context.Background(), server.MethodDiff, server.DiffParams{ID: a.Name}, &diff); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(diff.Diff, "+hello from the agent") || len(diff.Files) != 1 || diff.Files[0].Path != "hello.txt" || diff.Files[0].Status != "A" {
		t.Errorf("diff: %+v", diff)
	}
	var merged server.AgentResult
	if err := c.Call(context.Background(), server.MethodMerge, server.MergeParams{ID: a.ID[:6]}, &merged); err != nil {
		t.Fatal(err)
	}
	if merged.Agent.State != agents.StateMerged {
		t.Fatalf("state after merge %s", merged.Agent.State)
	}
	if data, err := os.ReadFile(filepath.Join(repo.Dir, "hello.txt")); err != nil || string(data) != "hello from the agent\n" {
		t.Errorf("main checkout after merge: %q %v", data, err)
	}
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Errorf("worktree still there after merge: %v", err)
	}
	if out := testenv.Git(t, repo.Dir, "branch", "--list", a.Branch); out != "" {
		t.Errorf("branch still there after merge: %q", out)
	}
	if parents := strings.Fields(testenv.Git(t, repo.Dir, "log", "-1", "--format=%P", "main")); len(parents) != 2 {
		t.Errorf("main head has %d parents, want a merge commit", len(parents))
	}
}

// While an agent runs, its diff includes what it has not committed yet
// (tracked edits and new files) without staging anything in its worktree.
func TestDiffOfRunningAgentIncludesUncommitted(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	gate := t.TempDir() + "/gate"
	a := spawn(t, c, repo.Dir, "write new.txt fresh; write README.md changed; waitfile "+gate)
	var wt string
	testenv.Eventually(t, 10*time.Second, "the agent wrote its files", func() bool {
		wt = get(t, c, a.ID).Worktree
		data, err := os.ReadFile(filepath.Join(wt, "README.md"))
		_, err2 := os.Stat(filepath.Join(wt, "new.txt"))
		return err == nil && string(data) == "changed\n" && err2 == nil
	})
	var diff server.DiffResult
	if err := c.Call(context.Background(), server.MethodDiff, server.DiffParams{ID: a.ID}, &diff); err != nil {
		t.Fatal(err)
	}
	if !diff.Uncommitted || diff.Stat.Files != 2 || diff.Stat.Commits != 0 {
		t.Fatalf("diff of a running agent: uncommitted %v stat %+v", diff.Uncommitted, diff.Stat)
	}
	got := map[string]string{}
	for _, f := range diff.Files {
		got[f.Path] = f.Status
	}
	if got["new.txt"] != "A" || got["README.md"] != "M" || !strings.Contains(diff.Diff, "+fresh") {
		t.Errorf("files %v diff %q", got, diff.Diff)
	}
	// Nothing was staged in the agent's worktree.
	if staged := testenv.Git(t, wt, "diff", "--cached", "--name-only"); staged != "" {
		t.Errorf("the diff staged files in the agent's worktree: %q", staged)
	}
	writeFile(t, gate)
	done := wait(t, c, a.ID)
	diff = server.DiffResult{}
	if err := c.Call(context.Background(), server.MethodDiff, server.DiffParams{ID: a.ID}, &diff); err != nil {
		t.Fatal(err)
	}
	if diff.Uncommitted || diff.Stat.Commits != 1 || diff.Stat.Files != 2 || done.Diff.Files != 2 {
		t.Errorf("diff after the run: uncommitted %v stat %+v", diff.Uncommitted, diff.Stat)
	}
}

func TestMergeSquashAndUnchangedCleanup(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write a.txt one; append a.txt two").ID)
	if err := c.Call(context.Background(), server.MethodMerge, server.MergeParams{ID: a.ID, Strategy: "squash"}, nil); err != nil {
		t.Fatal(err)
	}
	if parents := strings.Fields(testenv.Git(t, repo.Dir, "log", "-1", "--format=%P", "main")); len(parents) != 1 {
		t.Errorf("squash made a commit with %d parents", len(parents))
	}
	// An agent that changes nothing is cleaned up when it ends.
	n := wait(t, c, spawn(t, c, repo.Dir, "say nothing to do").ID)
	if n.State != agents.StateSucceeded || !n.Cleaned {
		t.Fatalf("unchanged agent: state %s cleaned %v", n.State, n.Cleaned)
	}
	if _, err := os.Stat(n.Worktree); !os.IsNotExist(err) {
		t.Errorf("unchanged agent's worktree kept: %v", err)
	}
	if out := testenv.Git(t, repo.Dir, "branch", "--list", n.Branch); out != "" {
		t.Errorf("unchanged agent's branch kept")
	}
	// A failing agent is failed with its exit code and last stderr line.
	f := wait(t, c, spawn(t, c, repo.Dir, "write f.txt partial; err compile error in main.go; exit 3").ID)
	if f.State != agents.StateFailed || f.ExitCode == nil || *f.ExitCode != 3 || !strings.Contains(f.Error, "compile error") {
		t.Errorf("failed agent: %s exit %v error %q", f.State, f.ExitCode, f.Error)
	}
	if f.Diff.Files != 1 {
		t.Errorf("failed agent's partial work not committed: %+v", f.Diff)
	}
}

func TestTwoSessionsBothReceiveAgentChanged(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	editor1, editor2 := d.client(t), d.client(t)
	// Sessions subscribe when they connect; a round trip makes sure both
	// are being served before the spawn.
	for _, c := range []*server.Client{editor1, editor2} {
		if err := c.Call(context.Background(), server.MethodHello, server.HelloParams{}, nil); err != nil {
			t.Fatal(err)
		}
	}
	a := spawn(t, editor1, repo.Dir, "write x.txt x")
	for i, c := range []*server.Client{editor1, editor2} {
		waitNote(t, c, 30*time.Second, fmt.Sprintf("succeeded on session %d", i+1), agentChanged(a.ID, agents.StateSucceeded))
	}
}

func TestDiscardRefusesUncommittedAndUnmergedWork(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write work.txt precious").ID)
	// The developer edits the worktree after the run.
	edited := filepath.Join(a.Worktree, "notes.txt")
	if err := os.WriteFile(edited, []byte("uncommitted\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID}, nil)
	if rpcCode(err) != server.CodeRefused || !strings.Contains(err.Error(), "notes.txt") || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("discard of a dirty worktree: %v", err)
	}
	if _, err := os.Stat(edited); err != nil {
		t.Fatal("the refused discard lost the uncommitted file")
	}
	os.Remove(edited)
	// Clean worktree, but the branch has a commit not in main.
	err = c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID}, nil)
	if rpcCode(err) != server.CodeRefused || !strings.Contains(err.Error(), "not merged") {
		t.Fatalf("discard of unmerged work: %v", err)
	}
	if got := testenv.Git(t, repo.Dir, "rev-parse", "--verify", a.Branch); got == "" {
		t.Fatal("branch gone after refused discard")
	}
	var res server.AgentResult
	if err := c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Agent.State != agents.StateDiscarded {
		t.Fatalf("state %s", res.Agent.State)
	}
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Error("worktree still there after forced discard")
	}
}

func TestMergeRefusesDirtyMainCheckout(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write README.md changed by agent").ID)
	if err := os.WriteFile(filepath.Join(repo.Dir, "README.md"), []byte("my own edit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	head := testenv.Git(t, repo.Dir, "rev-parse", "main")
	err := c.Call(context.Background(), server.MethodMerge, server.MergeParams{ID: a.ID}, nil)
	if rpcCode(err) != server.CodeRefused || !strings.Contains(err.Error(), "uncommitted") {
		t.Fatalf("merge into a dirty checkout: %v", err)
	}
	if data, _ := os.ReadFile(filepath.Join(repo.Dir, "README.md")); string(data) != "my own edit\n" {
		t.Fatalf("the developer's edit was touched: %q", data)
	}
	if testenv.Git(t, repo.Dir, "rev-parse", "main") != head {
		t.Fatal("main moved although the merge was refused")
	}
	if get(t, c, a.ID).State != agents.StateSucceeded {
		t.Fatal("refused merge changed the agent's state")
	}
}

func TestTwentyConcurrentSpawnsAreDistinct(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	const n = 20
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var res server.AgentResult
			errs[i] = c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: fmt.Sprintf("append log.txt agent %d", i), Name: "same", Repo: repo.Dir}, &res)
			if errs[i] == nil {
				ids[i] = res.Agent.ID
			}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil && !strings.Contains(err.Error(), "already used") {
			t.Fatalf("spawn %d: %v", i, err)
		}
	}
	// An exact --name is unique: one spawn wins, the rest get a clear error.
	var got []string
	for _, id := range ids {
		if id != "" {
			got = append(got, id)
		}
	}
	if len(got) != 1 {
		t.Fatalf("%d spawns named \"same\" succeeded, want exactly 1", len(got))
	}
	// Without --name, 20 spawns of the same task all succeed, distinctly.
	names, branches, worktrees := map[string]bool{}, map[string]bool{}, map[string]bool{}
	var mu sync.Mutex
	as := make([]*agents.Agent, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var res server.AgentResult
			errs[i] = c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "append log.txt fix the same bug", Repo: repo.Dir}, &res)
			if errs[i] == nil {
				mu.Lock()
				as[i] = res.Agent
				names[res.Agent.Name], branches[res.Agent.Branch], worktrees[res.Agent.Worktree] = true, true, true
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("spawn %d: %v", i, err)
		}
	}
	if len(names) != n || len(branches) != n || len(worktrees) != n {
		t.Fatalf("%d names, %d branches, %d worktrees; want %d each", len(names), len(branches), len(worktrees), n)
	}
	for _, a := range as {
		if w := wait(t, c, a.ID); w.State != agents.StateSucceeded || w.Diff.Files != 1 {
			t.Errorf("%s: %s %q diff %+v", w.Name, w.State, w.Error, w.Diff)
		}
	}
	if out := testenv.Git(t, repo.Dir, "worktree", "list", "--porcelain"); strings.Count(out, "worktree ") != n+2 {
		t.Errorf("git knows %d worktrees, want %d", strings.Count(out, "worktree "), n+2)
	}
}

// The daemon is SIGKILLed while an agent runs: the agent keeps running and
// finishes; a new daemon re-adopts it and records its real outcome.
func TestDaemonSIGKILLThenReadoption(t *testing.T) {
	home := t.TempDir()
	repo := testenv.NewRepo(t, "")
	d1 := startProcess(t, home)
	c1 := d1.client(t)
	release := filepath.Join(t.TempDir(), "release")
	a := spawn(t, c1, repo.Dir, "say started; waitfile "+release+"; write out.txt finished after restart; say bye")
	waitNote(t, c1, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
	shim := get(t, c1, a.ID).ShimPID
	if shim == 0 {
		t.Fatal("no shim pid recorded")
	}
	d1.kill(syscall.SIGKILL)
	if testenv.ProcessGone(shim) {
		t.Fatal("the shim died with the daemon")
	}
	// The agent finishes while no daemon runs.
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, "the shim to exit", func() bool { return testenv.ProcessGone(shim) })
	d2 := startProcess(t, home)
	c2 := d2.client(t)
	got := wait(t, c2, a.ID)
	if got.State != agents.StateSucceeded || got.Result != "bye" || got.Diff.Files != 1 {
		t.Fatalf("after re-adoption: state %s result %q diff %+v error %q", got.State, got.Result, got.Diff, got.Error)
	}
	// The recorded end is when the agent ended, not when the new daemon
	// noticed.
	var status struct{ FinishedAt time.Time }
	data, err := os.ReadFile(filepath.Join(home, "agents", a.ID, "status.json"))
	if err != nil || json.Unmarshal(data, &status) != nil {
		t.Fatalf("status.json: %v", err)
	}
	if got.FinishedAt == nil || !got.FinishedAt.Equal(status.FinishedAt.UTC()) {
		t.Errorf("finishedAt %v, want the shim's %v", got.FinishedAt, status.FinishedAt)
	}
	// The events the agent printed while no daemon ran are in its log.
	var lr server.LogResult
	if err := c2.Call(context.Background(), server.MethodLog, server.LogParams{ID: a.ID}, &lr); err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, ev := range lr.Events {
		texts = append(texts, ev.Text)
	}
	if j := strings.Join(texts, "|"); !strings.Contains(j, "started") || !strings.Contains(j, "bye") {
		t.Errorf("log after re-adoption: %s", j)
	}

	// Still running when the new daemon starts: it is adopted and followed.
	b := spawn(t, c2, repo.Dir, "say waiting; waitfile "+release+"2; write b.txt b")
	waitNote(t, c2, 30*time.Second, "running", agentChanged(b.ID, agents.StateRunning))
	d2.kill(syscall.SIGKILL)
	d3 := startProcess(t, home)
	c3 := d3.client(t)
	if s := get(t, c3, b.ID).State; s != agents.StateRunning {
		t.Fatalf("re-adopted agent is %s, want running", s)
	}
	if err := os.WriteFile(release+"2", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := wait(t, c3, b.ID); got.State != agents.StateSucceeded || got.Diff.Files != 1 {
		t.Fatalf("adopted running agent ended %s %q", got.State, got.Error)
	}

	// A shim that vanished without a status is lost, and its agent killed.
	pidfile := filepath.Join(t.TempDir(), "agent.pid")
	l := spawn(t, c3, repo.Dir, "pidfile "+pidfile+"; hang")
	waitNote(t, c3, 30*time.Second, "running", agentChanged(l.ID, agents.StateRunning))
	testenv.Eventually(t, 10*time.Second, "the agent's pid file", func() bool { _, err := os.Stat(pidfile); return err == nil })
	agentPID := readPIDFile(t, pidfile)
	lshim := get(t, c3, l.ID).ShimPID
	d3.kill(syscall.SIGKILL)
	_ = syscall.Kill(lshim, syscall.SIGKILL)
	testenv.Eventually(t, 10*time.Second, "the shim to die", func() bool { return testenv.ProcessGone(lshim) })
	d4 := startProcess(t, home)
	c4 := d4.client(t)
	if got := wait(t, c4, l.ID); got.State != agents.StateLost {
		t.Fatalf("agent without shim or status is %s, want lost", got.State)
	}
	testenv.Eventually(t, 10*time.Second, "the orphaned agent to be killed", func() bool { return testenv.ProcessGone(agentPID) })
}

// After a reboot (or any crash of shim and agent) the recorded pid may
// belong to an unrelated process: declaring the agent lost must not kill it.
func TestLostAgentNeverKillsAStranger(t *testing.T) {
	home := t.TempDir()
	p := server.Paths{State: home, Run: filepath.Join(home, "run")}
	repo := testenv.NewRepo(t, "")
	pidfile := filepath.Join(t.TempDir(), "agent.pid")
	srv := server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: time.Second, Logger: testLogger()})
	srv.Start()
	cl, ss := pipe()
	srv.ServeConn(ss)
	c := server.NewClient(context.Background(), cl)
	a := spawn(t, c, repo.Dir, "pidfile "+pidfile+"; hang")
	waitNote(t, c, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
	testenv.Eventually(t, 10*time.Second, "the agent's pid file", func() bool { _, err := os.Stat(pidfile); return err == nil })
	shim, agentPID := get(t, c, a.ID).ShimPID, readPIDFile(t, pidfile)
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// The "reboot": shim and agent are gone...
	_ = syscall.Kill(shim, syscall.SIGKILL)
	_ = syscall.Kill(-agentPID, syscall.SIGKILL)
	testenv.Eventually(t, 10*time.Second, "shim and agent to die", func() bool {
		return testenv.ProcessGone(shim) && testenv.ProcessGone(agentPID)
	})
	// ...and the agent's pid now names a stranger in its own group.
	stranger := exec.Command("sleep", "600")
	stranger.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := stranger.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stranger.Process.Kill(); _ = stranger.Wait() })
	if err := os.WriteFile(filepath.Join(home, "agents", a.ID, "agent.pid"), []byte(strconv.Itoa(stranger.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := &inproc{srv: server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: time.Second, Logger: testLogger()}), paths: p}
	d.srv.Start()
	t.Cleanup(func() { d.srv.Close() })
	if got := wait(t, d.client(t), a.ID); got.State != agents.StateLost {
		t.Fatalf("state %s, want lost", got.State)
	}
	if testenv.ProcessGone(stranger.Process.Pid) {
		t.Fatal("declaring the agent lost killed an unrelated process that reused its pid")
	}
}

// Twenty clients (editor windows, terminals) spawning at once.
func TestConcurrentSpawnsFromSeparateSessions(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	const n = 20
	clients := make([]*server.Client, n)
	for i := range clients {
		clients[i] = d.client(t)
	}
	var wg sync.WaitGroup
	got := make([]*agents.Agent, n)
	errs := make([]error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var res server.AgentResult
			errs[i] = clients[i].Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "write out.txt the same task", Repo: repo.Dir}, &res)
			got[i] = res.Agent
		}(i)
	}
	wg.Wait()
	seen := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		if seen[got[i].Branch] {
			t.Fatalf("branch %s given twice", got[i].Branch)
		}
		seen[got[i].Branch] = true
	}
	for i, a := range got {
		if w := wait(t, clients[i], a.ID); w.State != agents.StateSucceeded {
			t.Errorf("%s: %s %q", w.Name, w.State, w.Error)
		}
	}
}

// A chatty agent: every line arrives, in order, through the paged log.
func TestChattyAgentOutputIsComplete(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	const lines = 30000
	a := wait(t, c, spawn(t, c, repo.Dir, fmt.Sprintf("lines %d", lines)).ID)
	if a.State != agents.StateSucceeded || a.Result != fmt.Sprintf("line %d", lines) {
		t.Fatalf("state %s result %q", a.State, a.Result)
	}
	count, from := 0, int64(1)
	for {
		var lr server.LogResult
		if err := c.Call(context.Background(), server.MethodLog, server.LogParams{ID: a.ID, From: from}, &lr); err != nil {
			t.Fatal(err)
		}
		for _, ev := range lr.Events {
			if ev.Kind == "output" {
				count++
				if want := fmt.Sprintf("line %d", count); ev.Text != want {
					t.Fatalf("event %d is %q, want %q", ev.Seq, ev.Text, want)
				}
			}
		}
		from = lr.Next
		if !lr.More {
			break
		}
	}
	if count != lines {
		t.Fatalf("%d output events, want %d", count, lines)
	}
}

// An agent started from a tag lands in the branch checked out; a refused
// merge changes nothing, not even the agent's branch.
func TestMergeFromTagBaseAndRefusalChangesNothing(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	testenv.Git(t, repo.Dir, "tag", "v1")
	c := d.client(t)
	var res server.AgentResult
	if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "write tagged.txt t", Repo: repo.Dir, Base: "v1"}, &res); err != nil {
		t.Fatal(err)
	}
	a := wait(t, c, res.Agent.ID)
	// Pending edits in the agent's worktree, and a dirty main checkout.
	if err := os.WriteFile(filepath.Join(a.Worktree, "later.txt"), []byte("later\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo.Dir, "README.md"), []byte("dirty\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tip := testenv.Git(t, repo.Dir, "rev-parse", a.Branch)
	err := c.Call(context.Background(), server.MethodMerge, server.MergeParams{ID: a.ID}, nil)
	if rpcCode(err) != server.CodeRefused {
		t.Fatalf("merge into a dirty checkout: %v", err)
	}
	if testenv.Git(t, repo.Dir, "rev-parse", a.Branch) != tip {
		t.Fatal("the refused merge committed to the agent's branch")
	}
	testenv.Git(t, repo.Dir, "checkout", "README.md")
	var merged server.AgentResult
	if err := c.Call(context.Background(), server.MethodMerge, server.MergeParams{ID: a.ID}, &merged); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tagged.txt", "later.txt"} {
		if _, err := os.Stat(filepath.Join(repo.Dir, f)); err != nil {
			t.Errorf("%s not landed in main: %v", f, err)
		}
	}
	if err := c.Call(context.Background(), server.MethodMerge, server.MergeParams{ID: a.ID, Into: "no-such"}, nil); err == nil {
		t.Error("merge of a merged agent accepted")
	}
}

func readPIDFile(t *testing.T, path string) int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// Cancel of an agent that ignores SIGTERM and has forked a child that also
// ignores it: both are gone afterwards (SIGKILL after the grace period).
func TestCancelKillsAgentIgnoringSIGTERMAndItsChild(t *testing.T) {
	d := startInProcess(t, 300*time.Millisecond)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	tmp := t.TempDir()
	childFile, agentFile := filepath.Join(tmp, "child.pid"), filepath.Join(tmp, "agent.pid")
	a := spawn(t, c, repo.Dir, fmt.Sprintf("ignoreterm; fork %s; pidfile %s; hang", childFile, agentFile))
	testenv.Eventually(t, 30*time.Second, "the agent and its child to start", func() bool {
		_, e1 := os.Stat(childFile)
		_, e2 := os.Stat(agentFile)
		return e1 == nil && e2 == nil
	})
	child, agent := readPIDFile(t, childFile), readPIDFile(t, agentFile)
	var res server.AgentResult
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodCancel, server.IDParams{ID: a.ID}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Agent.State != agents.StateCancelled {
		t.Fatalf("state after cancel %s", res.Agent.State)
	}
	testenv.Eventually(t, 10*time.Second, "agent and child to be gone", func() bool {
		return testenv.ProcessGone(agent) && testenv.ProcessGone(child)
	})
}

func TestTimeoutFailsTheAgent(t *testing.T) {
	d := startInProcess(t, 200*time.Millisecond)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	var res server.AgentResult
	if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "say slow; hang", Repo: repo.Dir, Timeout: agents.Duration(300 * time.Millisecond)}, &res); err != nil {
		t.Fatal(err)
	}
	a := wait(t, c, res.Agent.ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "timed out") {
		t.Fatalf("state %s error %q, want failed with a timeout", a.State, a.Error)
	}
}

func TestQueueHoldsAgentsOverTheConcurrencyLimit(t *testing.T) {
	d := startInProcess(t, 200*time.Millisecond)
	repo := testenv.NewRepo(t, "")
	if err := os.WriteFile(filepath.Join(repo.Dir, ".bgagents.toml"), []byte(fmt.Sprintf("[defaults]\nagent = \"test\"\nmax_concurrent = 1\n[agents.test]\ncommand = [%q, \"{prompt}\"]\n", testenv.TestAgent(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	c := d.client(t)
	gate := filepath.Join(t.TempDir(), "gate")
	first := spawn(t, c, repo.Dir, "waitfile "+gate+"; write one.txt 1")
	waitNote(t, c, 30*time.Second, "first running", agentChanged(first.ID, agents.StateRunning))
	second := spawn(t, c, repo.Dir, "write two.txt 2")
	if s := get(t, c, second.ID).State; s != agents.StateQueued {
		t.Fatalf("second agent is %s while the first runs, want queued", s)
	}
	// Cancelling a queued agent never starts it.
	third := spawn(t, c, repo.Dir, "write three.txt 3")
	var res server.AgentResult
	if err := c.Call(context.Background(), server.MethodCancel, server.IDParams{ID: third.ID}, &res); err != nil || res.Agent.State != agents.StateCancelled {
		t.Fatalf("cancel queued: %v %+v", err, res.Agent)
	}
	if _, err := os.Stat(third.Worktree); !os.IsNotExist(err) {
		t.Error("a cancelled queued agent got a worktree")
	}
	if out := testenv.Git(t, repo.Dir, "branch", "--list", third.Branch); out != "" {
		t.Error("a cancelled queued agent got a branch")
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if a := wait(t, c, second.ID); a.State != agents.StateSucceeded {
		t.Fatalf("queued agent ended %s", a.State)
	}
	a1, a2 := get(t, c, first.ID), get(t, c, second.ID)
	if !a2.StartedAt.After(*a1.FinishedAt) && !a2.StartedAt.Equal(*a1.FinishedAt) {
		t.Errorf("second started %s before the first finished %s", a2.StartedAt, a1.FinishedAt)
	}
}

func TestFollowLogStreamsEveryEventOnce(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	gate := filepath.Join(t.TempDir(), "gate")
	a := spawn(t, c, repo.Dir, "lines 50; waitfile "+gate+"; lines 50")
	waitNote(t, c, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
	var lr server.LogResult
	if err := c.Call(context.Background(), server.MethodLog, server.LogParams{ID: a.ID, Follow: true}, &lr); err != nil {
		t.Fatal(err)
	}
	seen := map[int64]bool{}
	lines := 0
	for _, ev := range lr.Events {
		seen[ev.Seq] = true
		if strings.HasPrefix(ev.Text, "line ") {
			lines++
		}
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	next := lr.Next
	waitNote(t, c, 30*time.Second, "all output", func(n server.Note) bool {
		if n.Method == server.NotifyOutput {
			var p server.OutputParams
			if json.Unmarshal(n.Params, &p) == nil && p.ID == a.ID {
				for _, ev := range p.Events {
					if ev.Seq < next {
						continue // already in the log reply
					}
					if seen[ev.Seq] {
						t.Errorf("event %d delivered twice", ev.Seq)
					}
					seen[ev.Seq] = true
					if strings.HasPrefix(ev.Text, "line ") {
						lines++
					}
				}
			}
		}
		return agentChanged(a.ID, agents.StateSucceeded, agents.StateFailed)(n)
	})
	if lines != 100 {
		t.Fatalf("followed %d output lines, want 100", lines)
	}
	for s := int64(1); s <= int64(len(seen)); s++ {
		if !seen[s] {
			t.Fatalf("event %d missing (gap in the stream)", s)
		}
	}
}

// The daemon died after starting the shim but before recording "running":
// the restarted daemon finds the shim through shim.pid, adopts the agent
// and its worktree is kept.
func TestRestartDuringProvisioningAdoptsStartedShim(t *testing.T) {
	home := t.TempDir()
	p := server.Paths{State: home, Run: filepath.Join(home, "run")}
	repo := testenv.NewRepo(t, "")
	gate := filepath.Join(t.TempDir(), "gate")
	srv := server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: time.Second, Logger: testLogger()})
	srv.Start()
	cl, ss := pipe()
	srv.ServeConn(ss)
	c := server.NewClient(context.Background(), cl)
	a := spawn(t, c, repo.Dir, "waitfile "+gate+"; write kept.txt kept")
	waitNote(t, c, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
	c.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewind the record to the crash window.
	st, err := agents.OpenStore(context.Background(), filepath.Join(home, "bgagents.db"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := st.Get(context.Background(), a.ID)
	if err != nil {
		t.Fatal(err)
	}
	rec.State, rec.ShimPID, rec.StartedAt = agents.StateProvisioning, 0, nil
	if err := st.Put(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	st.Close()
	d := &inproc{srv: server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(t)}, Grace: time.Second, Logger: testLogger()}), paths: p}
	d.srv.Start()
	t.Cleanup(func() { stopAgents(t, d.client(t)); d.srv.Close() })
	c2 := d.client(t)
	if got := get(t, c2, a.ID); got.State != agents.StateRunning || got.ShimPID == 0 {
		t.Fatalf("after restart: %s shim %d, want running with its shim", got.State, got.ShimPID)
	}
	writeFile(t, gate)
	if got := wait(t, c2, a.ID); got.State != agents.StateSucceeded || got.Diff.Files != 1 {
		t.Fatalf("ended %s %q diff %+v", got.State, got.Error, got.Diff)
	}
}

// A cancel right when the agent is reported running (the shim may still be
// starting) ends it cancelled, never lost.
func TestCancelRightAfterStartIsCancelled(t *testing.T) {
	d := startInProcess(t, 300*time.Millisecond)
	repo := testenv.NewRepo(t, "")
	c := d.client(t)
	for i := 0; i < 5; i++ {
		a := spawn(t, c, repo.Dir, "hang")
		waitNote(t, c, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
		var res server.AgentResult
		if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodCancel, server.IDParams{ID: a.ID}, &res); err != nil {
			t.Fatal(err)
		}
		if res.Agent.State != agents.StateCancelled {
			t.Fatalf("try %d: state %s (%s), want cancelled", i, res.Agent.State, res.Agent.Error)
		}
	}
}

func TestAgentsListsConfiguredAndKnownAgents(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[agents.ghost]\ncommand = [\"no-such-agent-binary\", \"{prompt}\"]\n\n[review]\nagent = \"codex\"\nmodel = \"o3\"\n\n[push]\nremote = \"fork\"\n")
	testenv.Git(t, repo.Dir, "remote", "add", "upstream", "https://example.invalid/app.git")
	testenv.Git(t, repo.Dir, "remote", "add", "fork", "https://example.invalid/fork.git")
	pathWithGitOnly(t) // the daemon runs in this process: gh is not found
	c := d.client(t)
	var res server.AgentsResult
	if err := c.Call(context.Background(), server.MethodAgents, server.AgentsParams{Repo: repo.Dir}, &res); err != nil {
		t.Fatal(err)
	}
	byName := map[string]server.AgentInfo{}
	for _, a := range res.Agents {
		byName[a.Name] = a
	}
	if res.Default != "test" || !byName["test"].Configured || !byName["test"].Installed {
		t.Errorf("default %q, test agent %+v", res.Default, byName["test"])
	}
	if g := byName["ghost"]; !g.Configured || g.Installed || !strings.Contains(g.Problem, "no-such-agent-binary") {
		t.Errorf("ghost %+v", g)
	}
	if cl, ok := byName["claude"]; !ok || cl.Configured || cl.Provider != "claude" || !cl.ReadOnly {
		t.Errorf("claude %+v", cl)
	}
	if byName["test"].ReadOnly {
		t.Errorf("a command agent has no read-only mode: %+v", byName["test"])
	}
	if res.Review != (server.ReviewDefaults{Agent: "codex", Model: "o3"}) {
		t.Errorf("review defaults %+v", res.Review)
	}
	if res.Push.Remote != "fork" || strings.Join(res.Push.Remotes, ",") != "fork,upstream" || res.Push.GH {
		t.Errorf("push defaults %+v", res.Push)
	}
	if err := os.WriteFile(filepath.Join(os.Getenv("PATH"), "gh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(context.Background(), server.MethodAgents, server.AgentsParams{Repo: repo.Dir}, &res); err != nil || !res.Push.GH {
		t.Errorf("gh on PATH not seen: %+v %v", res.Push, err)
	}
}
