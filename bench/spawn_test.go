package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// BenchmarkSpawn measures, on one generated repository (FullShape; set
// BGAGENTS_BENCH_SCALE=0.1 for a quick run), the time from spawn to the
// agent process running for (a) bgagents with a warm pool, (b) bgagents
// cold, both with node_modules copied, and (c) the peers' path: git
// worktree add + cp -a node_modules. It reports medians and ratios.
//
// (d) is back to back: with a full pool of backToBack worktrees, that many
// agents are spawned in quick succession, each as soon as the one before
// runs (the agents keep running), so that every claim after the first
// meets the refill the claim before it started; it reports each spawn's
// latency, their median and the slowest.
func BenchmarkSpawn(b *testing.B) {
	shape := FullShape
	if s := os.Getenv("BGAGENTS_BENCH_SCALE"); s != "" {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f <= 0 {
			b.Fatalf("BGAGENTS_BENCH_SCALE=%q", s)
		}
		shape = Shape{Files: int(float64(shape.Files) * f), FileBytes: shape.FileBytes, ModuleFiles: int(float64(shape.ModuleFiles) * f)}
	}
	root := b.TempDir()
	repo := filepath.Join(root, "repo")
	start := time.Now()
	if err := Generate(repo, shape); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d files + %d in node_modules in %s", shape.Files, shape.ModuleFiles, time.Since(start).Round(time.Millisecond))
	const runs = 5

	// (c) the peers' path.
	var peers []time.Duration
	for i := 0; i < runs; i++ {
		wt := filepath.Join(root, fmt.Sprintf("peer%d", i))
		t0 := time.Now()
		run(b, repo, "git", "worktree", "add", "-q", "-b", fmt.Sprintf("peer%d", i), wt)
		run(b, repo, "cp", "-a", filepath.Join(repo, "node_modules"), filepath.Join(wt, "node_modules"))
		peers = append(peers, time.Since(t0))
		run(b, repo, "git", "worktree", "remove", "--force", wt)
	}

	home := filepath.Join(root, "home")
	p := server.Paths{State: home, Run: filepath.Join(home, "run")}
	srv := server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(b)}, Grace: time.Second})
	srv.Start()
	b.Cleanup(func() { srv.Close() })
	cl, ss := net.Pipe()
	srv.ServeConn(ss)
	c := server.NewClient(context.Background(), cl)
	b.Cleanup(func() { c.Close() })

	measure := func(pool int, label string) []time.Duration {
		cfg := fmt.Sprintf("[defaults]\nagent = \"t\"\nmax_concurrent = 16\n[agents.t]\ncommand = [%q, \"{prompt}\"]\n[worktree]\ncopy = [\"node_modules\"]\npool = %d\n", testenv.TestAgent(b), pool)
		if err := os.WriteFile(filepath.Join(repo, ".bgagents.toml"), []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		var ds []time.Duration
		if pool > 0 {
			// The pool starts filling with the repository's first spawn.
			var res server.AgentResult
			if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "say hi", Repo: repo, Name: label + "-prime"}, &res); err != nil {
				b.Fatal(err)
			}
			if err := c.Call(context.Background(), server.MethodWait, server.IDParams{ID: res.Agent.ID}, nil); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < runs; i++ {
			if pool > 0 {
				waitPool(b, home, pool)
			}
			t0 := time.Now()
			var res server.AgentResult
			if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "say hi", Repo: repo, Name: fmt.Sprintf("%s-%d", label, i)}, &res); err != nil {
				b.Fatal(err)
			}
			waitState(b, c, res.Agent.ID, agents.StateRunning)
			ds = append(ds, time.Since(t0))
			var done server.AgentResult
			if err := c.Call(context.Background(), server.MethodWait, server.IDParams{ID: res.Agent.ID}, &done); err != nil {
				b.Fatal(err)
			}
		}
		return ds
	}
	// (d) back to back from a full pool.
	backToBackRun := func() []time.Duration {
		cfg := fmt.Sprintf("[defaults]\nagent = \"t\"\nmax_concurrent = 16\n[agents.t]\ncommand = [%q, \"{prompt}\"]\n[worktree]\ncopy = [\"node_modules\"]\npool = %d\n", testenv.TestAgent(b), backToBack)
		if err := os.WriteFile(filepath.Join(repo, ".bgagents.toml"), []byte(cfg), 0o644); err != nil {
			b.Fatal(err)
		}
		// A spawn under this configuration starts the pool; it is made
		// whole before the burst.
		var res server.AgentResult
		if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "say hi", Repo: repo, Name: "b2b-prime"}, &res); err != nil {
			b.Fatal(err)
		}
		if err := c.Call(context.Background(), server.MethodWait, server.IDParams{ID: res.Agent.ID}, nil); err != nil {
			b.Fatal(err)
		}
		waitPool(b, home, backToBack)
		// The agents wait for a gate, as real ones would still be working
		// while the next is spawned.
		gate := filepath.Join(root, "b2b-gate")
		var ids []string
		var ds []time.Duration
		for i := 0; i < backToBack; i++ {
			t0 := time.Now()
			if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "waitfile " + gate + "; say hi", Repo: repo, Name: fmt.Sprintf("b2b-%d", i)}, &res); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, res.Agent.ID)
			ds = append(ds, waitAllRunning(b, c, []string{res.Agent.ID})[res.Agent.ID].Sub(t0))
		}
		if err := os.WriteFile(gate, nil, 0o644); err != nil {
			b.Fatal(err)
		}
		for _, id := range ids {
			if err := c.Call(context.Background(), server.MethodWait, server.IDParams{ID: id}, nil); err != nil {
				b.Fatal(err)
			}
		}
		return ds
	}
	b.ResetTimer()
	cold := measure(0, "cold")
	warm := measure(2, "warm")
	b2b := backToBackRun()
	b.StopTimer()
	mp, mc, mw := median(peers), median(cold), median(warm)
	mb, xb := median(b2b), slices.Max(b2b)
	b.ReportMetric(float64(mw.Microseconds())/1000, "ms-warm")
	b.ReportMetric(float64(mc.Microseconds())/1000, "ms-cold")
	b.ReportMetric(float64(mp.Microseconds())/1000, "ms-peers")
	b.ReportMetric(float64(mb.Microseconds())/1000, "ms-b2b-median")
	b.ReportMetric(float64(xb.Microseconds())/1000, "ms-b2b-max")
	b.Logf("median spawn → running: warm %s, cold %s, peers (worktree add + cp -a) %s; warm/peers %.1f%%, cold/peers %.2f", mw, mc, mp, 100*float64(mw)/float64(mp), float64(mc)/float64(mp))
	b.Logf("back to back, %d spawns from a pool of %d: %v; median %s, slowest %s (%.1f%% of the peers' path)", backToBack, backToBack, b2b, mb, xb, 100*float64(xb)/float64(mp))
}

// backToBack is the size of the pool, and of the burst of spawns, of the
// back-to-back case.
const backToBack = 3

// waitAllRunning reads agentChanged notifications until every agent of
// ids has been reported running, and returns when each was (deadline: 10
// minutes).
func waitAllRunning(b *testing.B, c *server.Client, ids []string) map[string]time.Time {
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	at := map[string]time.Time{}
	deadline := time.After(10 * time.Minute)
	for len(at) < len(ids) {
		select {
		case <-deadline:
			b.Fatalf("agents never all ran: %d of %d", len(at), len(ids))
		case n := <-c.Notes():
			if n.Method != server.NotifyAgentChanged {
				continue
			}
			var p server.AgentChangedParams
			if json.Unmarshal(n.Params, &p) != nil || p.Agent == nil || !want[p.Agent.ID] {
				continue
			}
			if _, seen := at[p.Agent.ID]; seen {
				continue
			}
			switch {
			case p.Agent.State == agents.StateRunning:
				at[p.Agent.ID] = time.Now()
			case !p.Agent.State.Active():
				b.Fatalf("agent %s ended %s before it ran: %s", p.Agent.Name, p.Agent.State, p.Agent.Error)
			}
		}
	}
	return at
}

func run(b *testing.B, dir string, name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v: %s", name, args, err, out)
	}
}

func median(ds []time.Duration) time.Duration {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// waitPool waits (deadline: 10 minutes) until the pool has n ready
// entries (pool/ID.json).
func waitPool(b *testing.B, home string, n int) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ready, _ := filepath.Glob(filepath.Join(home, "pool", "*.json"))
		if len(ready) >= n {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("the pool did not fill to %d", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func waitState(b *testing.B, c *server.Client, id string, st agents.State) {
	deadline := time.After(10 * time.Minute)
	for {
		var res server.GetResult
		select {
		case <-deadline:
			b.Fatalf("%s never reached %s", id, st)
		case <-c.Notes():
		}
		if err := c.Call(context.Background(), server.MethodGet, server.IDParams{ID: id}, &res); err != nil {
			b.Fatal(err)
		}
		if res.Agent.State == st || res.Agent.State == agents.StateSucceeded {
			return
		}
		if !res.Agent.State.Active() {
			// A spawn that failed is not a sample.
			b.Fatalf("%s ended %s before %s: %s", id, res.Agent.State, st, res.Agent.Error)
		}
	}
}
