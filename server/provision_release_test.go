package server_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/pgtest"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// portLeases returns the port blocks the in-process daemon has leased.
func portLeases(t *testing.T, d *inproc) []agents.PortLease {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	m, err := d.srv.Manager(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leases, err := m.Store().PortLeases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return leases
}

// agentDatabases lists the copies of app_dev on the server.
func agentDatabases(t *testing.T, pg *pgtest.Server) []string {
	t.Helper()
	ctx := testenv.Context(t, 30*time.Second)
	conn := pg.Connect(t, "postgres")
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'app_dev\_%' ORDER BY datname`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

// dbName is the database a postgres URL names.
func dbName(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(p.Path, "/")
}

// pidIn reads a pid file the test agent writes; 0 until it is complete.
func pidIn(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// assertNothingLeft checks that a failed agent left no worktree, branch
// or port lease.
func assertNothingLeft(t *testing.T, d *inproc, repo string, a *agents.Agent) {
	t.Helper()
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Errorf("worktree of %s left behind: %v", a.Name, err)
	}
	if out := testenv.Git(t, repo, "branch", "--list", a.Branch); out != "" {
		t.Errorf("branch %s left behind", a.Branch)
	}
	for _, l := range portLeases(t, d) {
		if l.AgentID == a.ID {
			t.Errorf("port lease %d+%d of %s left behind", l.Start, l.Count, a.Name)
		}
	}
}

// Two repositories copy the same template, each with an agent of the same
// name: each gets its own database, and ending one never drops the
// other's.
func TestPostgresNamesDoNotCollideAcrossRepos(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	pg.Exec(t, "app_dev", `CREATE TABLE users (name text)`)
	d := startInProcess(t, time.Second)
	cfg := fmt.Sprintf("\n[database]\nkind = \"postgres\"\nurl = %q\n", pg.URL("app_dev"))
	repo1, repo2 := testenv.NewRepo(t, cfg), testenv.NewRepo(t, cfg)
	c := d.client(t)
	gate := filepath.Join(t.TempDir(), "gate")
	spawnNamed := func(repo, task string) *agents.Agent {
		var res server.AgentResult
		if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodSpawn, server.SpawnParams{Task: task, Repo: repo, Name: "fix"}, &res); err != nil {
			t.Fatal(err)
		}
		return res.Agent
	}
	a := spawnNamed(repo1.Dir, "waitfile "+gate+"; write a.txt a")
	waitNote(t, c, 30*time.Second, "running", agentChanged(a.ID, agents.StateRunning))
	a = get(t, c, a.ID)
	b := wait(t, c, spawnNamed(repo2.Dir, "write b.txt b").ID)
	if b.State != agents.StateSucceeded {
		t.Fatalf("second agent: %s %q", b.State, b.Error)
	}
	if a.DatabaseURL == "" || a.DatabaseURL == b.DatabaseURL {
		t.Fatalf("database urls %q and %q", a.DatabaseURL, b.DatabaseURL)
	}
	for _, u := range []string{a.DatabaseURL, b.DatabaseURL} {
		if name := dbName(t, u); len(name) > 63 {
			t.Errorf("database name %q is longer than 63 bytes", name)
		}
	}
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodDiscard, server.DiscardParams{ID: b.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	ctx := testenv.Context(t, 30*time.Second)
	conn, err := pgx.Connect(ctx, a.DatabaseURL)
	if err != nil {
		t.Fatalf("the first agent's database is gone after the second was discarded: %v", err)
	}
	conn.Close(ctx)
	writeFile(t, gate)
	wait(t, c, a.ID)
	if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	if left := agentDatabases(t, pg); len(left) != 0 {
		t.Errorf("databases left: %v", left)
	}
}

// A database copy that cannot be dropped does not stop the cleanup half
// way: merge removes the worktree and branch and says what is left; rm
// later drops it. Auto-clean releases the copy and the ports too.
func TestPostgresCopyNotDroppedKeepsCleanupGoing(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[ports]\nrange = \"48100-48199\"\n\n[database]\nkind = \"postgres\"\nurl = %q\n", pg.URL("app_dev")))
	c := d.client(t)
	ctx := testenv.Context(t, 60*time.Second)

	// Auto-clean (nothing changed): the copy is dropped, the ports freed.
	unchanged := wait(t, c, spawn(t, c, repo.Dir, "say nothing to do").ID)
	if !unchanged.Cleaned {
		t.Fatalf("unchanged agent not cleaned: %s %q", unchanged.State, unchanged.Error)
	}
	if left := agentDatabases(t, pg); len(left) != 0 {
		t.Errorf("databases left after auto-clean: %v", left)
	}
	if len(portLeases(t, d)) != 0 {
		t.Errorf("port leases left after auto-clean: %v", portLeases(t, d))
	}
	if unchanged.Port != 0 || unchanged.DatabaseURL != "" {
		t.Errorf("record still names released resources: port %d db %q", unchanged.Port, unchanged.DatabaseURL)
	}

	a := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if a.State != agents.StateSucceeded || a.DatabaseURL == "" {
		t.Fatalf("%s %q db %q", a.State, a.Error, a.DatabaseURL)
	}
	name := dbName(t, a.DatabaseURL)
	// Someone changed the copy's comment: bgagents no longer recognises it
	// as its own and refuses to drop it.
	pg.Exec(t, "postgres", `COMMENT ON DATABASE `+name+` IS 'not yours'`)
	var res server.AgentResult
	if err := c.Call(ctx, server.MethodMerge, server.MergeParams{ID: a.ID}, &res); err != nil {
		t.Fatalf("merge: %v", err)
	}
	if res.Agent.State != agents.StateMerged {
		t.Fatalf("merge: %s", res.Agent.State)
	}
	if _, err := os.Stat(a.Worktree); !os.IsNotExist(err) {
		t.Errorf("worktree left after merge: %v", err)
	}
	if out := testenv.Git(t, repo.Dir, "branch", "--list", a.Branch); out != "" {
		t.Errorf("branch left after merge")
	}
	if len(portLeases(t, d)) != 0 {
		t.Errorf("port leases left after merge: %v", portLeases(t, d))
	}
	if left := agentDatabases(t, pg); len(left) != 1 {
		t.Fatalf("databases after a failed drop: %v", left)
	}
	// The copy is bgagents' again: rm drops it.
	pg.Exec(t, "postgres", `COMMENT ON DATABASE `+name+` IS 'bgagents: a copy of a database for an agent; dropped when the agent is discarded or merged'`)
	if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID}, &res); err != nil {
		t.Fatalf("rm after merge: %v", err)
	}
	if left := agentDatabases(t, pg); len(left) != 0 {
		t.Errorf("databases left after rm: %v", left)
	}
	if got := get(t, c, a.ID); got.State != agents.StateMerged || got.DatabaseURL != "" || got.Port != 0 {
		t.Errorf("after rm: %s db %q port %d", got.State, got.DatabaseURL, got.Port)
	}
	// Nothing left to do: rm refuses as before.
	if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID}, nil); err == nil || !strings.Contains(err.Error(), "already merged") {
		t.Errorf("second rm: %v", err)
	}
}

// Cancelling an agent during its setup kills the setup's process group at
// once and leaves nothing behind.
func TestProvisionCancelDuringSetup(t *testing.T) {
	d := startInProcess(t, time.Second)
	pidfile := filepath.Join(t.TempDir(), "setup.pid")
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[ports]\nrange = \"48200-48299\"\n\n[worktree]\nsetup = [[%q, \"pidfile %s; hang\"]]\n", testenv.TestAgent(t), pidfile))
	c := d.client(t)
	a := spawn(t, c, repo.Dir, "write never.txt x")
	testenv.Eventually(t, 30*time.Second, "the setup to start", func() bool { return pidIn(pidfile) > 0 })
	setup := pidIn(pidfile)
	var res server.AgentResult
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodCancel, server.IDParams{ID: a.ID}, &res); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	if res.Agent.State != agents.StateCancelled {
		t.Fatalf("state %s %q", res.Agent.State, res.Agent.Error)
	}
	if !testenv.ProcessGone(setup) {
		t.Errorf("the setup command %d still runs", setup)
	}
	assertNothingLeft(t, d, repo.Dir, res.Agent)
	if log := logText(t, c, a.ID); strings.Contains(log, "starting test") {
		t.Errorf("the agent was started after the cancel:\n%s", log)
	}
}

// A setup that runs past [worktree] setup_timeout fails the agent, naming
// the key.
func TestProvisionSetupTimeout(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\nsetup_timeout = \"1s\"\nsetup = [[%q, \"hang\"]]\n", testenv.TestAgent(t)))
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write never.txt x").ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "setup_timeout") {
		t.Fatalf("state %s error %q", a.State, a.Error)
	}
	assertNothingLeft(t, d, repo.Dir, a)
}

// Stopping the daemon during setup does not fail the agent, and a daemon
// killed during setup leaves nothing in the way: the next daemon stops the
// old setup, releases the ports and the database copy, and prepares the
// agent again.
func TestProvisionSurvivesDaemonStopAndCrash(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	home := t.TempDir()
	tmp := t.TempDir()
	pidfile, gate := filepath.Join(tmp, "setup.pid"), filepath.Join(tmp, "gate")
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[ports]\nrange = \"48300-48399\"\n\n[database]\nkind = \"postgres\"\nurl = %q\n\n[worktree]\nsetup = [[%q, \"pidfile %s; waitfile %s\"]]\n",
		pg.URL("app_dev"), testenv.TestAgent(t), pidfile, gate))
	d1 := startProcess(t, home)
	c1 := d1.client(t)
	a := spawn(t, c1, repo.Dir, "write out.txt done")
	testenv.Eventually(t, 30*time.Second, "the setup to start", func() bool { return pidIn(pidfile) > 0 })
	setup1 := pidIn(pidfile)
	if err := os.Remove(pidfile); err != nil {
		t.Fatal(err)
	}
	// A clean stop (bgagents daemon --stop): the agent stays, to be
	// prepared again.
	d1.kill(syscall.SIGTERM)
	testenv.Eventually(t, 30*time.Second, "the first setup to end", func() bool { return testenv.ProcessGone(setup1) })

	d2 := startProcess(t, home)
	c2 := d2.client(t)
	testenv.Eventually(t, 60*time.Second, "the setup to start again", func() bool { return pidIn(pidfile) > 0 })
	setup2 := pidIn(pidfile)
	// The daemon records the setup's process group right after starting
	// it; the crash comes once it has (before, nothing could find it).
	testenv.Eventually(t, 30*time.Second, "the daemon to record the setup's process group", func() bool {
		_, err := os.Stat(filepath.Join(home, "agents", a.ID, "setup.pid"))
		return err == nil
	})
	if got := get(t, c2, a.ID); got.State != agents.StateProvisioning {
		t.Fatalf("after a daemon stop during setup: %s %q", got.State, got.Error)
	}
	if err := os.Remove(pidfile); err != nil {
		t.Fatal(err)
	}
	// A crash: the setup outlives the daemon, with ports and database held.
	d2.kill(syscall.SIGKILL)
	if testenv.ProcessGone(setup2) {
		t.Fatal("the setup died with the daemon; the test needs it to outlive it")
	}
	if dbs := agentDatabases(t, pg); len(dbs) != 1 {
		t.Fatalf("databases while the setup runs: %v", dbs)
	}
	d3 := startProcess(t, home)
	c3 := d3.client(t)
	testenv.Eventually(t, 30*time.Second, "the old setup to be stopped", func() bool { return testenv.ProcessGone(setup2) })
	testenv.Eventually(t, 60*time.Second, "the setup to start a third time", func() bool { return pidIn(pidfile) > 0 })
	writeFile(t, gate)
	got := wait(t, c3, a.ID)
	if got.State != agents.StateSucceeded || got.Port == 0 || got.DatabaseURL == "" {
		t.Fatalf("after re-provisioning: %s %q port %d db %q", got.State, got.Error, got.Port, got.DatabaseURL)
	}
	if dbs := agentDatabases(t, pg); len(dbs) != 1 {
		t.Errorf("databases after re-provisioning: %v", dbs)
	}
	if err := c3.Call(testenv.Context(t, 30*time.Second), server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	if dbs := agentDatabases(t, pg); len(dbs) != 0 {
		t.Errorf("databases after discard: %v", dbs)
	}
}

// An SQLite database git does not ignore is not copied (the copy would be
// committed to the agent's branch): a clear error, nothing left behind.
func TestProvisionSQLiteMustBeIgnored(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[ports]\nrange = \"48400-48499\"\n\n[database]\nkind = \"sqlite\"\npath = \"db/dev.sqlite3\"\n")
	if err := os.MkdirAll(filepath.Join(repo.Dir, "db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(repo.Dir, "db", "dev.sqlite3"), []byte("data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if a.State != agents.StateFailed || !strings.Contains(a.Error, "add it to .gitignore") {
		t.Fatalf("state %s error %q", a.State, a.Error)
	}
	assertNothingLeft(t, d, repo.Dir, a)
}

// A copy path that git does not ignore is left out, and the agent's log
// says so and what to do.
func TestProvisionWarnsAboutUnignoredCopy(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[worktree]\ncopy = [\"notes.txt\"]\n")
	if err := os.WriteFile(filepath.Join(repo.Dir, "notes.txt"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := d.client(t)
	a := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if a.State != agents.StateSucceeded {
		t.Fatalf("state %s error %q", a.State, a.Error)
	}
	if log := logText(t, c, a.ID); !strings.Contains(log, "notes.txt was not copied") || !strings.Contains(log, "add it to .gitignore") {
		t.Errorf("no warning about notes.txt in the log:\n%s", log)
	}
	if _, err := os.Stat(filepath.Join(a.Worktree, "notes.txt")); !os.IsNotExist(err) {
		t.Errorf("notes.txt copied: %v", err)
	}
}

// Setup in a pool worktree does not see the developer's PORT or
// DATABASE_URL (the daemon's environment); a changed setup invalidates the
// pool, and pool = 0 throws the entries away.
func TestWarmPoolSetupEnvAndInvalidation(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://localhost/developers_own")
	t.Setenv("PORT", "3000")
	d := startInProcess(t, time.Second)
	setup := `[["sh", "-c", "printf '%s|%s|%s' \"$PORT\" \"$DATABASE_URL\" \"$BGAGENTS_POOL\" > setup-env.txt"]]`
	repo := testenv.NewRepo(t, "\n[worktree]\npool = 1\nsetup = "+setup+"\n")
	if err := os.WriteFile(filepath.Join(repo.Dir, ".gitignore"), []byte("setup-env.txt\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, repo.Dir, "add", ".gitignore")
	testenv.Git(t, repo.Dir, "commit", "-q", "-m", "ignore")
	c := d.client(t)
	poolEntries := func() int { return len(poolReady(d.paths.State)) }
	poolBranches := func() int {
		out := testenv.Git(t, repo.Dir, "for-each-ref", "--format=%(refname)", "refs/heads/bgagents-pool/")
		return len(strings.Fields(out))
	}
	first := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID)
	if first.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", first.State, first.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return poolEntries() == 1 })
	second := wait(t, c, spawn(t, c, repo.Dir, "write two.txt 2").ID)
	if log := logText(t, c, second.ID); !strings.Contains(log, "took a ready worktree from the pool") {
		t.Fatalf("second agent did not use the pool:\n%s", log)
	}
	data, err := os.ReadFile(filepath.Join(second.Worktree, "setup-env.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "||1" {
		t.Errorf("pool setup saw PORT|DATABASE_URL|BGAGENTS_POOL = %q; want %q", data, "||1")
	}
	testenv.Eventually(t, 60*time.Second, "the pool to refill", func() bool { return poolEntries() == 1 })
	if n := poolBranches(); n != 1 {
		t.Errorf("%d pool branches, want 1 (the refilled entry):\n%s\n%s", n, testenv.Git(t, repo.Dir, "branch", "-a"), testenv.Git(t, repo.Dir, "worktree", "list"))
	}

	// Another setup: the entry made under the old one is thrown away.
	cfgPath := filepath.Join(repo.Dir, ".bgagents.toml")
	cfg, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), "setup-env.txt", "setup-env.txt; true", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	ready := poolReady(d.paths.State)
	if len(ready) != 1 {
		t.Fatalf("%d pool entries", len(ready))
	}
	staleID := ready[0]
	third := wait(t, c, spawn(t, c, repo.Dir, "write three.txt 3").ID)
	if third.State != agents.StateSucceeded {
		t.Fatalf("third: %s %s", third.State, third.Error)
	}
	if log := logText(t, c, third.ID); strings.Contains(log, "took a ready worktree from the pool") {
		t.Errorf("the third agent claimed an entry made under the old setup:\n%s", log)
	}
	// Stale entries are thrown away in the background.
	testenv.Eventually(t, 60*time.Second, "the stale pool entry to go", func() bool {
		_, err := os.Stat(filepath.Join(filepath.Dir(first.Worktree), ".pool", staleID))
		return testenv.Git(t, repo.Dir, "branch", "--list", "bgagents-pool/"+staleID) == "" && os.IsNotExist(err)
	})
	testenv.Eventually(t, 60*time.Second, "the pool to refill under the new setup", func() bool { return poolEntries() == 1 && poolBranches() == 1 })

	// pool = 0: the next spawn throws the entries away.
	cfg, _ = os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(cfg), "pool = 1", "pool = 0", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	fourth := wait(t, c, spawn(t, c, repo.Dir, "write four.txt 4").ID)
	if fourth.State != agents.StateSucceeded {
		t.Fatalf("fourth: %s %s", fourth.State, fourth.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to be thrown away with pool = 0", func() bool {
		ents, _ := os.ReadDir(filepath.Join(filepath.Dir(first.Worktree), ".pool"))
		all, _ := os.ReadDir(filepath.Join(d.paths.State, "pool"))
		return poolEntries() == 0 && poolBranches() == 0 && len(ents) == 0 && len(all) == 0
	})
	for _, a := range []*agents.Agent{first, second, third, fourth} {
		_ = c.Call(context.Background(), server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil)
	}
}

// A daemon killed while it fills the warm pool leaves a half-made pool
// worktree, its branch and its setup still running. The next daemon, at
// start and without any spawn, stops that setup, removes the worktree and
// the branch, and fills the pool again.
func TestWarmPoolCrashDuringFillIsSweptAtStart(t *testing.T) {
	home := t.TempDir()
	tmp := t.TempDir()
	pidfile, gate := filepath.Join(tmp, "setup.pid"), filepath.Join(tmp, "gate")
	// Only the pool's setup waits (agents' own setups run through).
	script := fmt.Sprintf(`if [ -n "$BGAGENTS_POOL" ]; then exec %s "pidfile %s; waitfile %s"; fi`, testenv.TestAgent(t), pidfile, gate)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\npool = 1\nsetup = [[\"sh\", \"-c\", %q]]\n", script))
	d1 := startProcess(t, home)
	c1 := d1.client(t)
	first := wait(t, c1, spawn(t, c1, repo.Dir, "write one.txt 1").ID)
	if first.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", first.State, first.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool's setup to start", func() bool { return pidIn(pidfile) > 0 })
	setup1 := pidIn(pidfile)
	making, _ := filepath.Glob(filepath.Join(home, "pool", "*.making"))
	if len(making) != 1 {
		t.Fatalf("pool files while filling: %v", making)
	}
	id := strings.TrimSuffix(filepath.Base(making[0]), ".making")
	poolDir := filepath.Join(filepath.Dir(first.Worktree), ".pool", id)
	// The daemon records the setup's process group right after starting it.
	testenv.Eventually(t, 30*time.Second, "a setup.pid for the pool's setup", func() bool {
		_, err := os.Stat(filepath.Join(home, "pool", id+".setup.pid"))
		return err == nil
	})
	if err := os.Remove(pidfile); err != nil {
		t.Fatal(err)
	}
	d1.kill(syscall.SIGKILL)
	if testenv.ProcessGone(setup1) {
		t.Fatal("the pool's setup died with the daemon; the test needs it to outlive it")
	}
	if _, err := os.Stat(poolDir); err != nil {
		t.Fatalf("the half-made pool worktree: %v", err)
	}

	startProcess(t, home)
	t.Cleanup(func() { writeFile(t, gate) }) // before d2 stops
	testenv.Eventually(t, 30*time.Second, "the old pool setup to be stopped", func() bool { return testenv.ProcessGone(setup1) })
	testenv.Eventually(t, 60*time.Second, "the half-made pool worktree and branch to go", func() bool {
		_, err := os.Stat(poolDir)
		return os.IsNotExist(err) && testenv.Git(t, repo.Dir, "branch", "--list", "bgagents-pool/"+id) == ""
	})
	// The pool is filled again, without a spawn.
	testenv.Eventually(t, 60*time.Second, "the pool's setup to start again", func() bool { return pidIn(pidfile) > 0 })
	writeFile(t, gate)
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool {
		ready := poolReady(home)
		return len(ready) == 1 && ready[0] != id && poolBranchCount(t, repo.Dir) == 1
	})
	if files, _ := filepath.Glob(filepath.Join(home, "pool", "*.making")); len(files) != 0 {
		t.Errorf("pool files left: %v", files)
	}
	if out := testenv.Git(t, repo.Dir, "worktree", "list", "--porcelain"); strings.Count(out, "/.pool/") != 1 {
		t.Errorf("pool worktrees registered:\n%s", out)
	}
}

// The port block is leased before a pool worktree is claimed: a lease
// that fails costs no pool entry and leaves nothing behind, and a claimed
// worktree's block is released like any other.
func TestPortLeaseBeforePoolClaim(t *testing.T) {
	d := startInProcess(t, time.Second)
	repo := testenv.NewRepo(t, "\n[ports]\nrange = \"48700-48709\"\nper_agent = 10\n\n[worktree]\npool = 1\n")
	c := d.client(t)
	// The first agent holds the only block.
	first := wait(t, c, spawn(t, c, repo.Dir, "write one.txt 1").ID)
	if first.State != agents.StateSucceeded || first.Port != 48700 {
		t.Fatalf("first: %s %s port %d", first.State, first.Error, first.Port)
	}
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool { return len(poolReady(d.paths.State)) == 1 })
	entry := poolReady(d.paths.State)[0]

	noPorts := wait(t, c, spawn(t, c, repo.Dir, "write x.txt x").ID)
	if noPorts.State != agents.StateFailed || !strings.Contains(noPorts.Error, "ports") {
		t.Fatalf("without a free block: %s %q", noPorts.State, noPorts.Error)
	}
	if log := logText(t, c, noPorts.ID); strings.Contains(log, "took a ready worktree") {
		t.Errorf("a pool entry was claimed for an agent that got no ports:\n%s", log)
	}
	if got := poolReady(d.paths.State); !slices.Equal(got, []string{entry}) {
		t.Errorf("pool entries %v; want the same ready entry %s", got, entry)
	}
	assertNothingLeft(t, d, repo.Dir, noPorts)

	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodDiscard, server.DiscardParams{ID: first.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	warm := wait(t, c, spawn(t, c, repo.Dir, "printenv PORT; write y.txt y").ID)
	if log := logText(t, c, warm.ID); warm.State != agents.StateSucceeded || warm.Port != 48700 || !strings.Contains(log, "took a ready worktree") || !strings.Contains(log, "PORT=48700") {
		t.Fatalf("warm: %s %q port %d\n%s", warm.State, warm.Error, warm.Port, log)
	}
	if err := c.Call(testenv.Context(t, 30*time.Second), server.MethodDiscard, server.DiscardParams{ID: warm.ID, Force: true}, nil); err != nil {
		t.Fatal(err)
	}
	if leases := portLeases(t, d); len(leases) != 0 {
		t.Errorf("leases left: %v", leases)
	}
}

// A template named the libpq way (the dbname parameter of a URL without a
// path, or a keyword/value DSN with a quoted value) is copied, and the
// copy named in the agent's DATABASE_URL the same way.
func TestPostgresTemplateNamedByDbnameParameter(t *testing.T) {
	pg := pgtest.Start(t)
	pg.Exec(t, "postgres", `CREATE DATABASE app_dev`)
	pg.Exec(t, "app_dev", `CREATE TABLE users (name text)`)
	pg.Exec(t, "app_dev", `INSERT INTO users VALUES ('seeded')`)
	d := startInProcess(t, time.Second)
	c := d.client(t)
	ctx := testenv.Context(t, 60*time.Second)
	for _, tmpl := range []string{
		fmt.Sprintf("postgres:///?host=%s&port=%d&user=%s&dbname=app_dev&sslmode=disable", pg.SocketDir, pg.Port, pgtest.Superuser),
		fmt.Sprintf("host=%s port=%d user=%s dbname = 'app_dev' sslmode=disable", pg.SocketDir, pg.Port, pgtest.Superuser),
	} {
		repo := testenv.NewRepo(t, fmt.Sprintf("\n[database]\nkind = \"postgres\"\nurl = %q\n", tmpl))
		a := wait(t, c, spawn(t, c, repo.Dir, "printenv DATABASE_URL; write x.txt x").ID)
		if a.State != agents.StateSucceeded {
			t.Fatalf("%s: %s %q", tmpl, a.State, a.Error)
		}
		want := "app_dev_" + strings.ReplaceAll(a.Name, "-", "_") + "_" + a.ID
		if cfg, err := pgx.ParseConfig(a.DatabaseURL); err != nil || cfg.Database != want {
			t.Errorf("%s: agent url %q does not name %s (%v)", tmpl, a.DatabaseURL, want, err)
		}
		conn, err := pgx.Connect(ctx, a.DatabaseURL)
		if err != nil {
			t.Fatalf("connect to the copy: %v", err)
		}
		var n int
		var db string
		if err := conn.QueryRow(ctx, `SELECT count(*), current_database() FROM users`).Scan(&n, &db); err != nil || n != 1 || db != want {
			t.Errorf("%s: copy has %d rows in %q (%v); want 1 in %s", tmpl, n, db, err, want)
		}
		conn.Close(ctx)
		if err := c.Call(ctx, server.MethodDiscard, server.DiscardParams{ID: a.ID, Force: true}, nil); err != nil {
			t.Fatal(err)
		}
		if left := agentDatabases(t, pg); len(left) != 0 {
			t.Errorf("%s: databases left after discard: %v", tmpl, left)
		}
	}
}

// A daemon stopped gracefully in the middle of its pool's first fill
// leaves what it half made to the next daemon, which removes it and fills
// the pool again at start, without waiting for a spawn.
func TestWarmPoolStopDuringFillRefillsAtStart(t *testing.T) {
	home := t.TempDir()
	tmp := t.TempDir()
	pidfile, gate := filepath.Join(tmp, "setup.pid"), filepath.Join(tmp, "gate")
	script := fmt.Sprintf(`if [ -n "$BGAGENTS_POOL" ]; then exec %s "pidfile %s; waitfile %s"; fi`, testenv.TestAgent(t), pidfile, gate)
	repo := testenv.NewRepo(t, fmt.Sprintf("\n[worktree]\npool = 1\nsetup = [[\"sh\", \"-c\", %q]]\n", script))
	d1 := startProcess(t, home)
	c1 := d1.client(t)
	if first := wait(t, c1, spawn(t, c1, repo.Dir, "write one.txt 1").ID); first.State != agents.StateSucceeded {
		t.Fatalf("first: %s %s", first.State, first.Error)
	}
	testenv.Eventually(t, 60*time.Second, "the pool's setup to start", func() bool { return pidIn(pidfile) > 0 })
	if err := os.Remove(pidfile); err != nil {
		t.Fatal(err)
	}
	d1.kill(syscall.SIGTERM)

	startProcess(t, home)
	t.Cleanup(func() { writeFile(t, gate) }) // before the daemon stops
	testenv.Eventually(t, 60*time.Second, "the pool's setup to start again after the restart", func() bool { return pidIn(pidfile) > 0 })
	writeFile(t, gate)
	testenv.Eventually(t, 60*time.Second, "the pool to fill", func() bool {
		return len(poolReady(home)) == 1 && poolBranchCount(t, repo.Dir) == 1
	})
	if out := testenv.Git(t, repo.Dir, "worktree", "list", "--porcelain"); strings.Count(out, "/.pool/") != 1 {
		t.Errorf("pool worktrees registered:\n%s", out)
	}
}
