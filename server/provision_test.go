package server_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/pgtest"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

func logText(t *testing.T, c *server.Client, id string) string {
	t.Helper()
	var b strings.Builder
	from := int64(1)
	for {
		var lr server.LogResult
		if err := c.Call(context.Background(), server.MethodLog, server.LogParams{ID: id, From: from}, &lr); err != nil {
			t.Fatal(err)
		}
		for _, ev := range lr.Events {
			b.WriteString(ev.Text + "\n")
		}
		from = lr.Next
		if !lr.More {
			return b.String()
		}
	}
}

// An agent starts with its own port block, the gitignored files it needs
// and its own copy of the SQLite database; discarding it frees the ports.
func TestProvisionPortsFilesAndSQLite(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, `
[ports]
range = "47100-47199"
per_agent = 5

[database]
kind = "sqlite"
path = "db/dev.sqlite3"

[worktree]
copy = ["node_modules", ".env"]
`)
	// Ignored files of the main checkout.
	if err := os.WriteFile(filepath.Join(repo.Dir, ".gitignore"), []byte("node_modules/\n.env\ndb/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo.Dir, "add", ".gitignore")
	testenv.Git(t, repo.Dir, "commit", "-q", "-m", "ignore")
	for path, body := range map[string]string{"node_modules/pkg/index.js": "module.exports = 1\n", ".env": "SECRET=1\n", "db/dev.sqlite3": "not really sqlite, but a file\n"} {
		full := filepath.Join(repo.Dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "printenv PORT BGAGENTS_PORT_COUNT DATABASE_URL; append node_modules/pkg/index.js changed; write out.txt done").ID)
	if a.State != agents.StateSucceeded {
		t.Fatalf("state %s: %s", a.State, a.Error)
	}
	if a.Port < 47100 || a.Port+a.PortCount-1 > 47199 || a.PortCount != 5 || (a.Port-47100)%5 != 0 {
		t.Fatalf("port block %d+%d", a.Port, a.PortCount)
	}
	dbCopy := filepath.Join(a.Worktree, "db/dev.sqlite3")
	if a.DatabaseURL != "sqlite://"+dbCopy {
		t.Errorf("databaseUrl %q", a.DatabaseURL)
	}
	log := logText(t, c, a.ID)
	for _, want := range []string{fmt.Sprintf("PORT=%d", a.Port), "BGAGENTS_PORT_COUNT=5", "DATABASE_URL=sqlite://" + dbCopy} {
		if !strings.Contains(log, want) {
			t.Errorf("agent env lacks %s:\n%s", want, log)
		}
	}
	for _, f := range []string{".env", "node_modules/pkg/index.js", "db/dev.sqlite3"} {
		if _, err := os.Stat(filepath.Join(a.Worktree, f)); err != nil {
			t.Errorf("%s not copied: %v", f, err)
		}
	}
	// The agent wrote into its copy: the original is untouched.
	if data, _ := os.ReadFile(filepath.Join(repo.Dir, "node_modules/pkg/index.js")); string(data) != "module.exports = 1\n" {
		t.Errorf("the main checkout's node_modules changed: %q", data)
	}
	// Discard releases the block (its lease is gone) and the copies go
	// with the worktree.
	if err := c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Errorf("worktree (with its copies) still there: %v", err)
	}
	assertNothingLeft(t, d, repo.Dir, a)
	b := wait(t, c, spawn(t, c, repo.Dir, "write b.txt b").ID)
	if b.Port == 0 {
		t.Fatalf("second agent got no ports")
	}
}

// Concurrent agents never share ports, and a port another process holds is
// never handed out.
func TestPortBlocksAreDisjointAndSkipBusyPorts(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[ports]\nrange = \"47200-47799\"\nper_agent = 10\n")
	cfg := filepath.Join(repo.Dir, ".bgagents.toml")
	data, _ := os.ReadFile(cfg)
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(data), "max_concurrent = 4", "max_concurrent = 64", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Another program holds a port in the range.
	ln, err := net.Listen("tcp", "127.0.0.1:47203")
	if err != nil {
		t.Skipf("port 47203 unavailable here: %v", err)
	}
	defer ln.Close()
	c := d.client(t)
	const n = 50
	var wg sync.WaitGroup
	ids := make([]string, n)
	errs := make([]error, n)
	gate := filepath.Join(t.TempDir(), "gate")
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var res server.AgentResult
			errs[i] = c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "waitfile " + gate + "; write x.txt x", Repo: repo.Dir}, &res)
			if errs[i] == nil {
				ids[i] = res.Agent.ID
			}
		}(i)
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	used := map[int]string{}
	for _, id := range ids {
		var a *agents.Agent
		testenv.Eventually(t, 60*time.Second, "ports for "+id, func() bool { a = get(t, c, id); return a.Port > 0 || !a.State.Active() })
		if a.Port == 0 {
			t.Fatalf("%s: %s %s", a.Name, a.State, a.Error)
		}
		for p := a.Port; p < a.Port+a.PortCount; p++ {
			if other, ok := used[p]; ok {
				t.Fatalf("port %d given to %s and %s", p, other, a.Name)
			}
			used[p] = a.Name
			if p == 47203 {
				t.Fatalf("%s got port 47203, which another process holds", a.Name)
			}
		}
	}
	writeFile(t, gate)
	for _, id := range ids {
		wait(t, c, id)
	}
}

// A failing setup command fails the agent with its output in the log and
// leaves nothing behind: no worktree, no branch, no port lease.
func TestSetupFailureReleasesEverything(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[ports]\nrange = \"47800-47899\"\n\n[worktree]\nsetup = [[%q, \"err dependency resolution failed; exit 7\"]]\n", testenv.TestAgent(t)))
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write never.txt x").ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "setup") {
		t.Fatalf("state %s error %q", a.State, a.Error)
	}
	if log := logText(t, c, a.ID); !strings.Contains(log, "dependency resolution failed") {
		t.Errorf("setup output not in the log:\n%s", log)
	}
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Errorf("worktree left behind: %v", err)
	}
	// The worktree, branch and port lease are all gone.
	assertNothingLeft(t, d, repo.Dir, a)
}

// A copy source that does not exist is a clear error and nothing is left.
func TestMissingCopySourceIsAClearError(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[ports]\nrange = \"48500-48599\"\n\n[worktree]\ncopy = [\"node_modules\"]\n")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "node_modules") {
		t.Fatalf("state %s error %q", a.State, a.Error)
	}
	assertNothingLeft(t, d, repo.Dir, a)
}

// Each agent works on its own copy of the Postgres dev database: seeded
// data is there, its writes never reach the original, and the copy is
// dropped when the agent is discarded. A real private PostgreSQL cluster.
func TestPostgresCopyPerAgent(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	pg.Exec(t, "app_dev", `CREATE TABLE users (name text)`)
	pg.Exec(t, "app_dev", `INSERT INTO users VALUES ('seeded')`)
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[ports]\nrange = \"48600-48699\"\n\n[database]\nkind = \"postgres\"\nurl = %q\n", pg.URL("app_dev")))
	c := d.client(t)
	gate := filepath.Join(t.TempDir(), "gate")
	a := spawn(t, c, repo.Dir, "printenv DATABASE_URL; waitfile "+gate+"; write x.txt x")
	waitNote(t, c, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
	a = get(t, c, a.ID)
	if !strings.Contains(a.DatabaseURL, "/app_dev_"+strings.ReplaceAll(a.Name, "-", "_")) {
		t.Fatalf("databaseUrl %q", a.DatabaseURL)
	}
	ctx := testenv.Context(t, 60*time.Second)
	conn, err := pgx.Connect(ctx, a.DatabaseURL)
	if err != nil {
		t.Fatalf("connect to the agent's copy: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM users WHERE name = 'seeded'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("seeded row in the copy: %d %v", n, err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO users VALUES ('agent')`); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	orig := pg.Connect(t, "app_dev")
	if err := orig.QueryRow(ctx, `SELECT count(*) FROM users WHERE name = 'agent'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("the agent's write reached the original: %d %v", n, err)
	}
	// While the developer is connected to the template, a new copy fails
	// with the remedy, and nothing is left behind.
	busy := spawn(t, c, repo.Dir, "write y.txt y")
	busy = wait(t, c, busy.ID)
	if busy.State != agents.StateFailed || !strings.Contains(busy.Error, "connected") {
		t.Fatalf("busy template: %s %q", busy.State, busy.Error)
	}
	if !strings.Contains(busy.Error, "[database] url") {
		t.Errorf("busy template: the remedy names the wrong key: %q", busy.Error)
	}
	assertNothingLeft(t, d, repo.Dir, busy)
	// The failed spawn dropped nothing of the running agent's.
	if dbs := agentDatabases(t, pg); len(dbs) != 1 {
		t.Errorf("databases after the busy-template failure: %v", dbs)
	}
	orig.Close(ctx)
	writeFile(t, gate)
	wait(t, c, a.ID)
	if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	admin := pg.Connect(t, "postgres")
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_database WHERE datname LIKE 'app_dev_%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d agent databases left after discard (%v)", n, err)
	}
}

// With [worktree] pool, spawns after the first take a ready worktree: the
// copies and setup are done, the branch and directory are the agent's,
// and the files are at the agent's base even when the base moved.
func TestWarmPoolClaimsAReadyWorktree(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\npool = 1\ncopy = [\".env\"]\nsetup = [[%q, \"write setup-ran.txt yes\"]]\n", testenv.TestAgent(t)))
	if err := os.WriteFile(filepath.Join(repo.Dir, ".gitignore"), []byte(".env\nsetup-ran.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo.Dir, ".env"), []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo.Dir, "add", ".gitignore")
	testenv.Git(t, repo.Dir, "commit", "-q", "-m", "ignore")
	c := d.client(t)
	first := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID)
	if first.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", first.State, first.Error)
	}

	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return len(poolReady(d.paths.State)) == 1 })
	// The base moves after the pool entry was made.
	if err := os.WriteFile(filepath.Join(repo.Dir, "moved.txt"), []byte("new\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo.Dir, "add", "moved.txt")
	testenv.Git(t, repo.Dir, "commit", "-q", "-m", "base moves")
	second := wait(t, c, spawn(t, c, repo.Dir, "write two.txt 2").ID)
	if second.State != agents.StateSucceeded {
		t.Fatalf("second: %s %s", second.State, second.Error)
	}
	if log := logText(t, c, second.ID); !strings.Contains(log, "took a ready worktree from the pool") {
		t.Fatalf("second agent did not use the pool:\n%s", log)
	}
	for _, f := range []string{".env", "setup-ran.txt", "moved.txt", "two.txt"} {
		if _, err := os.Stat(filepath.Join(second.Worktree, f)); err != nil {
			t.Errorf("%s missing in the claimed worktree: %v", f, err)
		}
	}
	if got := testenv.Git(t, repo.Dir, "rev-parse", second.Branch+"~1"); got != testenv.Git(t, repo.Dir, "rev-parse", "main") {
		t.Errorf("the agent's commit is not on the current base")
	}
	if head := testenv.Git(t, second.Worktree, "rev-parse", "--abbrev-ref", "HEAD"); head != second.Branch {
		t.Errorf("claimed worktree is on %s, want %s", head, second.Branch)
	}
	// The pool refills, and no pool branch is left behind after discard.
	testenv.Eventually(t, 60*time.Second, "the pool to refill", func() bool { return len(poolReady(d.paths.State)) == 1 })
	if err := c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: second.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	want := "refs/heads/bgagents-pool/" + poolReady(d.paths.State)[0]
	if got := testenv.Git(t, repo.Dir, "for-each-ref", "--format=%(refname)", "refs/heads/bgagents-pool/"); got != want {
		t.Errorf("pool branches after discard: %q; want only the ready entry's %q", got, want)
	}
	if out := testenv.Git(t, repo.Dir, "branch", "--list", second.Branch); out != "" {
		t.Errorf("the claimed worktree's branch %s is left after discard", second.Branch)
	}
}

// poolReady lists the ids of the ready entries of the warm pool of the
// daemon whose state directory is home, sorted.
func poolReady(home string) []string {
	files, _ := filepath.Glob(filepath.Join(home, "pool", "*.json"))
	var ids []string
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	return ids
}

// poolBranchCount is the number of bgagents-pool/ branches of repo.
func poolBranchCount(t *testing.T, repo string) int {
	return len(strings.Fields(testenv.Git(t, repo, "for-each-ref", "--format=%(refname)", "refs/heads/bgagents-pool/")))
}

// A claim never waits behind a pool refill's checkout: the refill holds
// the repository's git lock only while git registers its worktree. Here
// the refill's checkout is held up (by a post-checkout hook that waits
// for a gate), and the next spawn still claims the other ready worktree
// and runs.
func TestWarmPoolClaimDoesNotWaitForARefillCheckout(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[worktree]\npool = 2\n")
	tmp := t.TempDir()
	armed, started, gate := filepath.Join(tmp, "armed"), filepath.Join(tmp, "started"), filepath.Join(tmp, "gate")
	hook := fmt.Sprintf("#!/bin/sh\ncase \"$(pwd -P)\" in\n*/.pool/*) if [ -e %s ]; then : > %s; exec %s %q; fi ;;\nesac\n",
		armed, started, testenv.TestAgent(t), "waitfile "+gate)
	hookPath := filepath.Join(repo.Dir, ".git", "hooks", "post-checkout")
	if err := os.MkdirAll(filepath.Dir(hookPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(hookPath, []byte(hook), 0o755); err != nil {
		t.Fatal(err)
	}
	// Runs before the daemon stops: the held-up refill can finish.
	t.Cleanup(func() { writeFile(t, gate) })
	c := d.client(t)
	first := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID)
	if first.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", first.State, first.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return len(poolReady(d.paths.State)) == 2 })

	writeFile(t, armed)
	second := wait(t, c, spawn(t, c, repo.Dir, "write two.txt 2").ID)
	if log := logText(t, c, second.ID); second.State != agents.StateSucceeded || !strings.Contains(log, "took a ready worktree from the pool") {
		t.Fatalf("second: %s %s\n%s", second.State, second.Error, log)
	}
	// The refill that claim started is now stuck in its checkout.
	testenv.Eventually(t, 60*time.Second, "the refill's checkout to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	third := spawn(t, c, repo.Dir, "write three.txt 3")
	waitNote(t, c, 20*time.Second, "the third agent running while the refill's checkout is held up", agentChanged(third.ID, agents.StateRunning, agents.StateSucceeded, agents.StateFailed))
	third = wait(t, c, third.ID)
	if log := logText(t, c, third.ID); third.State != agents.StateSucceeded || !strings.Contains(log, "took a ready worktree from the pool") {
		t.Fatalf("third: %s %s\n%s", third.State, third.Error, log)
	}
	if _, err := os.Stat(gate); err == nil {
		t.Fatal("the gate was open")
	}
	writeFile(t, gate)
	testenv.Eventually(t, 60*time.Second, "the pool to refill", func() bool {
		return len(poolReady(d.paths.State)) == 2 && poolBranchCount(t, repo.Dir) == 2
	})
	for _, a := range []*agents.Agent{first, second, third} {
		if err := c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
			t.Error(err)
		}
	}
}

// What setup commands print is in the agent's log (`bgagents logs`) and
// in setup.log, never in its result: an agent that prints nothing has
// no result.
func TestSetupOutputIsLoggedNotTheResult(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\nsetup = [[%q, \"say setup says hello; err setup warns\"]]\n", testenv.TestAgent(t)))
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if a.State != agents.StateSucceeded {
		t.Fatalf("state %s: %s", a.State, a.Error)
	}
	if strings.Contains(a.Result, "setup") {
		t.Errorf("the setup's output became the agent's result: %q", a.Result)
	}
	log := logText(t, c, a.ID)
	for _, want := range []string{"setup says hello", "setup warns", "setup 1/1"} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	data, err := os.ReadFile(filepath.Join(d.paths.State, "agents", a.ID, "setup.log"))
	if err != nil || !strings.Contains(string(data), "setup says hello") || !strings.Contains(string(data), "setup warns") {
		t.Errorf("setup.log: %q, %v", data, err)
	}
	if data, _ := os.ReadFile(filepath.Join(d.paths.State, "agents", a.ID, "stdout.log")); strings.Contains(string(data), "setup") {
		t.Errorf("setup output in stdout.log: %q", data)
	}
}

// Files setup makes or changes that git does not ignore are not committed
// as the agent's work, whether the setup ran in the agent's worktree or in
// a pool worktree it claimed, unless the agent changes them. An agent that
// changed nothing is still cleaned up.
func TestSetupFilesAreNotCommitted(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\npool = 1\nsetup = [[%q, \"write generated.txt gen; append README.md setup was here\"]]\n", testenv.TestAgent(t)))
	c := d.client(t)
	changed := func(a *agents.Agent) []string {
		return strings.Fields(testenv.Git(t, repo.Dir, "diff", "--name-only", a.BaseCommit, a.Branch))
	}
	cold := wait(t, c, spawn(t, c, repo.Dir, "write work.txt w").ID)
	if cold.State != agents.StateSucceeded {
		t.Fatalf("cold: %s %s", cold.State, cold.Error)
	}
	if got := changed(cold); !slices.Equal(got, []string{"work.txt"}) {
		t.Errorf("cold agent committed %q; want only work.txt", got)
	}
	if log := logText(t, c, cold.ID); !strings.Contains(log, "setup left 2 file(s) git does not ignore") {
		t.Errorf("no note about setup's files:\n%s", log)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return len(poolReady(d.paths.State)) == 1 })
	warm := wait(t, c, spawn(t, c, repo.Dir, "append generated.txt the agent's line; write work2.txt w").ID)
	if log := logText(t, c, warm.ID); warm.State != agents.StateSucceeded || !strings.Contains(log, "took a ready worktree from the pool") {
		t.Fatalf("warm: %s %s\n%s", warm.State, warm.Error, log)
	}
	if got := changed(warm); !slices.Equal(got, []string{"generated.txt", "work2.txt"}) {
		t.Errorf("warm agent committed %q; want generated.txt (it changed it) and work2.txt", got)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to refill", func() bool { return len(poolReady(d.paths.State)) == 1 })
	idle := wait(t, c, spawn(t, c, repo.Dir, "say nothing to do").ID)
	if idle.State != agents.StateSucceeded || !idle.Cleaned {
		t.Errorf("an agent that changed nothing: %s, cleaned %v (%s)", idle.State, idle.Cleaned, idle.Error)
	}
	if _, err := os.Stat(idle.Worktree); !os.IsNotExist(err) {
		t.Errorf("its worktree is still there: %v", err)
	}
	for _, a := range []*agents.Agent{cold, warm} {
		if err := c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
			t.Error(err)
		}
	}
}

// .worktreeinclude has gitignore syntax and selects only what git ignores.
func TestWorktreeIncludeCopiesIgnoredMatches(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "")
	files := map[string]string{
		".gitignore":          ".env*\nnode_modules/\nsecrets/\n",
		".worktreeinclude":    "# gitignore syntax\n.env*\n!.env.test\n**/node_modules/\nsecrets/*\n!secrets/prod.key\nnotes.txt\n",
		".env":                "A=1\n",
		".env.test":           "T=1\n",
		"node_modules/m/i.js": "m\n",
		"secrets/dev.key":     "dev\n",
		"secrets/prod.key":    "prod\n",
		"notes.txt":           "mine, not ignored\n",
	}
	for p, body := range files {
		full := filepath.Join(repo.Dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, repo.Dir, "add", ".gitignore", ".worktreeinclude")
	testenv.Git(t, repo.Dir, "commit", "-q", "-m", "include")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if a.State != agents.StateSucceeded {
		t.Fatalf("state %s: %s", a.State, a.Error)
	}
	for p, want := range map[string]bool{".env": true, "node_modules/m/i.js": true, "secrets/dev.key": true, ".env.test": false, "secrets/prod.key": false, "notes.txt": false} {
		_, err := os.Stat(filepath.Join(a.Worktree, p))
		if got := err == nil; got != want {
			t.Errorf("%s copied: %v; want %v", p, got, want)
		}
	}
}

// A fill under way follows the configuration: a larger pool set while an
// entry is being made is filled without another spawn.
func TestWarmPoolFillFollowsAResize(t *testing.T) {
	d := startInProcess(t, time.Second)
	tmp := t.TempDir()
	pidfile, gate := filepath.Join(tmp, "setup.pid"), filepath.Join(tmp, "gate")
	script := fmt.Sprintf(`if [ -n "$BGAGENTS_POOL" ]; then exec %s "pidfile %s; waitfile %s"; fi`, testenv.TestAgent(t), pidfile, gate)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\npool = 1\nsetup = [[\"sh\", \"-c\", %q]]\n", script))
	t.Cleanup(func() { writeFile(t, gate) }) // before the daemon stops
	c := d.client(t)
	first := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID)
	if first.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", first.State, first.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool's setup to start", func() bool { return pidIn(pidfile) > 0 })
	cfgPath := filepath.Join(repo.Dir, ".bgagents.toml")
	cfg, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), "pool = 1", "pool = 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	writeFile(t, gate)
	testenv.Eventually(t, 60*time.Second, "the pool to fill to the new size", func() bool {
		return len(poolReady(d.paths.State)) == 2 && poolBranchCount(t, repo.Dir) == 2
	})
}

// With the database server down, discarding an agent (even without
// --force, when it holds no work) removes its worktree and branch and
// records it discarded, keeping the copy's URL and saying it is left; `rm`
// drops the copy once the server is back.
func TestDiscardWithDatabaseServerDownIsRecorded(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[database]\nkind = \"postgres\"\nurl = %q\n", pg.URL("app_dev")))
	cfgFile := filepath.Join(repo.Dir, ".bgagents.toml")
	data, err := os.ReadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(string(data), "[defaults]\n", "[defaults]\ncleanup_unchanged = false\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo.Dir, "commit", "-qam", "keep unchanged agents")
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "say nothing to do").ID)
	if a.State != agents.StateSucceeded || a.DatabaseURL == "" {
		t.Fatalf("agent %s %q", a.State, a.DatabaseURL)
	}
	pg.Stop(t)
	ctx := testenv.Context(t, 60*time.Second)
	var res server.AgentResult
	if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID}, &res); err != nil {
		t.Fatalf("discard with the database server down: %v", err)
	}
	if res.Agent.State != agents.StateDiscarded || res.Agent.DatabaseURL == "" {
		t.Fatalf("after discard: %s, databaseUrl %q", res.Agent.State, res.Agent.DatabaseURL)
	}
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Errorf("worktree left: %v", err)
	}
	pg.Resume(t)
	var again server.AgentResult
	if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID}, &again); err != nil {
		t.Fatalf("rm again: %v", err)
	}
	if again.Agent.DatabaseURL != "" {
		t.Errorf("databaseUrl kept after the copy was dropped: %q", again.Agent.DatabaseURL)
	}
	if dbs := agentDatabases(t, pg); len(dbs) != 0 {
		t.Errorf("databases left: %v", dbs)
	}
}

// A pool whose fill fails (here a setup step that needs what only agents
// get) is not refilled by every spawn: spawns go cold and say why.
func TestWarmPoolFillFailureBacksOffAndIsReported(t *testing.T) {
	d := startInProcess(t, time.Second)
	mark := filepath.Join(t.TempDir(), "pool-setups")
	setup := fmt.Sprintf(`if [ -n "$BGAGENTS_POOL" ]; then echo run >> %s; echo setup needs DATABASE_URL >&2; exit 3; fi`, mark)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\npool = 1\nsetup = [[\"sh\", \"-c\", %q]]\n", setup))
	c := d.client(t)
	if a := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID); a.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", a.State, a.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool fill to fail", func() bool {
		making, _ := filepath.Glob(filepath.Join(d.paths.State, "pool", "*.making"))
		_, err := os.Stat(mark)
		return err == nil && len(making) == 0
	})
	second := wait(t, c, spawn(t, c, repo.Dir, "write two.txt 2").ID)
	if second.State != agents.StateSucceeded {
		t.Fatalf("second: %s %s", second.State, second.Error)
	}
	if log := logText(t, c, second.ID); !strings.Contains(log, "the warm pool could not be filled") || !strings.Contains(log, "exit") {
		t.Errorf("the cold spawn does not say why the pool is empty:\n%s", log)
	}
	if data, _ := os.ReadFile(mark); strings.Count(string(data), "run") != 1 {
		t.Errorf("the failing pool setup ran %d times, want once", strings.Count(string(data), "run"))
	}
}

// Dropping a database copy on a hung server does not hold the repository's
// git lock: while one agent's discard waits for the server, another agent
// of the same repository merges.
func TestHungDatabaseDoesNotBlockOtherMerges(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[database]\nkind = \"postgres\"\nurl = %q\n", pg.URL("app_dev")))
	c := d.client(t)
	h1 := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID)
	h2 := wait(t, c, spawn(t, c, repo.Dir, "write two.txt 2").ID)
	if h1.State != agents.StateSucceeded || h2.State != agents.StateSucceeded {
		t.Fatalf("agents: %s %s", h1.State, h2.State)
	}
	thaw := pg.Freeze(t)
	ctx := testenv.Context(t, 120*time.Second)
	discarded := make(chan error, 1)
	go func() {
		discarded <- c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: h1.ID, Force: true}, nil)
	}()
	testenv.Eventually(t, 30*time.Second, "h1's worktree to be removed", func() bool {
		_, err := os.Stat(h1.Worktree)
		return os.IsNotExist(err)
	})
	merged := make(chan error, 1)
	go func() {
		merged <- c.Call(ctx, server.MethodMerge, server.MergeParams{ID: h2.ID}, nil)
	}()
	// The merge lands on main while h1's discard still waits for the
	// database server (up to its 10 s connect timeout per attempt).
	testenv.Eventually(t, 8*time.Second, "h2 merged into main while the database hangs", func() bool {
		out, err := exec.Command("git", "-C", repo.Dir, "show", "main:two.txt").Output()
		return err == nil && strings.TrimSpace(string(out)) == "2"
	})
	select {
	case err := <-discarded:
		t.Fatalf("h1's discard ended before the server answered (%v): the test did not exercise a hung drop", err)
	default:
	}
	thaw()
	if err := <-discarded; err != nil {
		t.Errorf("discard: %v", err)
	}
	if err := <-merged; err != nil {
		t.Errorf("merge: %v", err)
	}
}

// A database copy that fails (the template is busy) uses up no warm
// worktree: the copy is made before the claim.
func TestFailedDatabaseCopyKeepsThePoolEntry(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[database]\nkind = \"postgres\"\nurl = %q\n\n[worktree]\npool = 1\n", pg.URL("app_dev")))
	c := d.client(t)
	if a := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID); a.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", a.State, a.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return len(poolReady(d.paths.State)) == 1 })
	entry := poolReady(d.paths.State)[0]
	busy := pg.Connect(t, "app_dev") // the developer is connected to the template
	b := wait(t, c, spawn(t, c, repo.Dir, "write two.txt 2").ID)
	if b.State != agents.StateFailed || !strings.Contains(b.Error, "database") {
		t.Fatalf("busy template: %s %q", b.State, b.Error)
	}
	if got := poolReady(d.paths.State); len(got) != 1 || got[0] != entry {
		t.Errorf("the pool entry %s was used up by a failed copy: ready %v", entry, got)
	}
	assertNothingLeft(t, d, repo.Dir, b)
	busy.Close(context.Background())
}
