package bench

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
	b.ResetTimer()
	cold := measure(0, "cold")
	warm := measure(2, "warm")
	b.StopTimer()
	mp, mc, mw := median(peers), median(cold), median(warm)
	b.ReportMetric(float64(mw.Microseconds())/1000, "ms-warm")
	b.ReportMetric(float64(mc.Microseconds())/1000, "ms-cold")
	b.ReportMetric(float64(mp.Microseconds())/1000, "ms-peers")
	b.Logf("median spawn → running: warm %s, cold %s, peers (worktree add + cp -a) %s; warm/peers %.1f%%, cold/peers %.2f", mw, mc, mp, 100*float64(mw)/float64(mp), float64(mc)/float64(mp))
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

// waitPool waits (deadline: 10 minutes) until the pool has n entries.
func waitPool(b *testing.B, home string, n int) {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		ents, _ := os.ReadDir(filepath.Join(home, "pool"))
		if len(ents) >= n {
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
		if res.Agent.State == st || !res.Agent.State.Active() {
			return
		}
	}
}
