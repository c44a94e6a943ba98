package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
)

// The landing commands from a terminal: a fan-out of two, a review with
// its verdict printed, conflicts in ls, a pipeline step, a push to a local
// bare remote, and integrate.
func TestCLILandingCommands(t *testing.T) {
	ta := testenv.TestAgent(t)
	verdict := `{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"VERDICT: request_changes\nshared.txt:1: pick one variant","session_id":"r1"}`
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[agents.claude]\nbinary = %q\nenv = { TESTAGENT_SCRIPT = '''json %s''' }\n\n[agents.fix]\ncommand = [%q, \"{prompt}\"]\nenv = { TESTAGENT_SCRIPT = '''write shared.txt fixed''' }\n", ta, verdict, ta))
	c := newCLI(t, repo.Dir)

	ids := strings.Fields(c.ok("spawn", "--variants", "2", "--wait", "write shared.txt variant; stamp shared.txt"))
	if len(ids) != 2 {
		t.Fatalf("fan-out printed %v", ids)
	}
	ls := c.ok("ls")
	if !strings.Contains(ls, "variant 1 of") || !strings.Contains(ls, "variant 2 of") {
		t.Errorf("ls does not show the group:\n%s", ls)
	}
	// Both variants wrote shared.txt differently: each conflicts with the other.
	testenv.Eventually(t, 15*time.Second, "ls showing the conflict", func() bool {
		return strings.Contains(c.ok("ls"), "conflicts with") && strings.Contains(c.ok("show", ids[0]), "conflicts:")
	})

	out := c.ok("review", "--agent", "claude", "--wait", ids[0])
	if !strings.Contains(out, "request changes") || !strings.Contains(out, "shared.txt:1: pick one variant") {
		t.Errorf("review --wait printed:\n%s", out)
	}
	if show := c.ok("show", ids[0]); !strings.Contains(show, "review:") || !strings.Contains(show, "request changes") {
		t.Errorf("show lacks the review:\n%s", show)
	}

	step := strings.TrimSpace(c.ok("spawn", "--after", ids[0], "--agent", "fix", "--wait", "fix the conflict"))
	if show := c.ok("show", step); !strings.Contains(show, "after:") || !strings.Contains(show, "bgagents/") {
		t.Errorf("show of the pipeline step:\n%s", show)
	}

	_, errs, code := c.run("push", ids[0])
	if code != 2 || !strings.Contains(errs, "git remote add") {
		t.Errorf("push without a remote: exit %d: %s", code, errs)
	}
	bare := filepath.Join(t.TempDir(), "remote.git")
	testenv.Git(t, repo.Dir, "init", "-q", "--bare", bare)
	testenv.Git(t, repo.Dir, "remote", "add", "origin", bare)
	if out := c.ok("push", ids[1]); !strings.HasPrefix(out, "pushed bgagents/") || !strings.Contains(out, "to origin") {
		t.Errorf("push printed %q", out)
	}

	out = c.ok("integrate", "--agent", "fix", "--wait", ids[0], ids[1])
	if !strings.Contains(out, "succeeded on bgagents/integrate-") {
		t.Errorf("integrate printed %q", out)
	}
	_, errs, code = c.run("integrate", ids[0])
	if code != 2 || !strings.Contains(errs, "requires at least 2 arg") {
		t.Errorf("integrate of one: exit %d: %s", code, errs)
	}
}

// `spawn --wait` says on stderr how the worktree is being prepared (the
// setup commands) and when the agent starts; a step waiting for an agent
// that needs input says so, with the command that answers it.
func TestSpawnWaitPrintsProgressAndWaitingHint(t *testing.T) {
	ta := testenv.TestAgent(t)
	denied := `{"type":"result","subtype":"success","is_error":false,"num_turns":1,"result":"could not write","session_id":"s1","permission_denials":[{"tool_name":"Write","tool_use_id":"t1","tool_input":{"file_path":"/w/a.txt"}}]}`
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\nsetup = [[\"git\", \"--version\"]]\n\n[agents.claude]\nbinary = %q\nenv = { TESTAGENT_SCRIPT = '''json %s''' }\n", ta, denied))
	c := newCLI(t, repo.Dir)

	_, errs, code := c.run("spawn", "--wait", "--agent", "claude", "--name", "asker", "write a.txt")
	if code == 0 {
		t.Fatal("an agent that needs input exited 0")
	}
	for _, want := range []string{"asker: setup 1/1: git --version", "asker: starting claude", "asker: running", "answer with: bgagents msg asker"} {
		if !strings.Contains(errs, want) {
			t.Errorf("spawn --wait stderr lacks %q:\n%s", want, errs)
		}
	}

	cmd := exec.Command(testenv.Bgagents(t), "spawn", "--wait", "--after", "asker", "write b.txt hi")
	cmd.Dir = repo.Dir
	cmd.Env = append(os.Environ(), "BGAGENTS_HOME="+c.home)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	hint := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		var seen strings.Builder
		for sc.Scan() {
			seen.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "waiting for asker, which needs input: answer with bgagents msg asker") {
				hint <- seen.String()
				return
			}
		}
		hint <- "stderr ended without the hint:\n" + seen.String()
	}()
	select {
	case got := <-hint:
		if strings.HasPrefix(got, "stderr ended") {
			t.Fatal(got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no hint that the step waits for an agent that needs input")
	}
	if ls := c.ok("ls"); !strings.Contains(ls, "after asker (which needs input: bgagents msg asker)") {
		t.Errorf("ls does not say what the step waits for:\n%s", ls)
	}
	c.ok("cancel", "asker")
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Errorf("the step after a cancelled agent: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("spawn --wait of the step did not end after its dependency was cancelled")
	}
}

// A merged or discarded agent that still holds a database copy is named on
// stderr by merge/rm and in ls.
func TestReleaseWarning(t *testing.T) {
	held := &agents.Agent{Name: "pg", State: agents.StateDiscarded, DatabaseURL: "postgres://localhost/app_dev_pg_1"}
	if w := releaseWarning(held); !strings.Contains(w, "could not be dropped") || !strings.Contains(w, "bgagents rm pg") {
		t.Errorf("warning %q", w)
	}
	if n := notes(held, nil); !strings.Contains(n, "database copy not dropped yet") {
		t.Errorf("notes %q", n)
	}
	for _, a := range []*agents.Agent{
		{Name: "live", State: agents.StateRunning, DatabaseURL: "postgres://localhost/x"},
		{Name: "lite", State: agents.StateMerged, DatabaseURL: "sqlite:///tmp/x.db"},
		{Name: "done", State: agents.StateMerged},
	} {
		if w := releaseWarning(a); w != "" {
			t.Errorf("%s: unexpected warning %q", a.Name, w)
		}
	}
}
