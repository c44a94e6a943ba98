package server_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

// BenchmarkSpawnToRunning measures, through a client session, the time
// from sending bgagents/spawn to receiving agentChanged "running": name and
// record, worktree creation, the shim and the agent process starting.
func BenchmarkSpawnToRunning(b *testing.B) {
	_, c, repo := benchSetup(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var res server.AgentResult
		if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: "say hi", Repo: repo.Dir}, &res); err != nil {
			b.Fatal(err)
		}
		benchWait(b, c, res.Agent.ID, agents.StateRunning)
		b.StopTimer()
		benchWait(b, c, res.Agent.ID, agents.StateSucceeded)
		b.StartTimer()
	}
}

// BenchmarkExitToNotification measures the time from the agent process
// exiting (it writes a timestamp as its last act) to a client receiving
// agentChanged with the final state: shim status, output drain, commit,
// diff stat, store write and fan-out.
func BenchmarkExitToNotification(b *testing.B) {
	_, c, repo := benchSetup(b)
	dir := b.TempDir()
	var total time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		stamp := filepath.Join(dir, fmt.Sprintf("stamp-%d", i))
		var res server.AgentResult
		if err := c.Call(context.Background(), server.MethodSpawn, server.SpawnParams{Task: fmt.Sprintf("write f%d.txt x; stamp %s; exit 0", i, stamp), Repo: repo.Dir}, &res); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		benchWait(b, c, res.Agent.ID, agents.StateSucceeded)
		got := time.Now()
		b.StopTimer()
		data, err := os.ReadFile(stamp)
		if err != nil {
			b.Fatal(err)
		}
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		total += got.Sub(time.Unix(0, ns))
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/exit-to-notify")
}

func benchSetup(b *testing.B) (*server.Server, *server.Client, *testenv.Repo) {
	b.Helper()
	home := b.TempDir()
	p := server.Paths{State: home, Run: filepath.Join(home, "run")}
	srv := server.New(server.Options{Paths: p, Shim: []string{testenv.Bgagents(b)}, Grace: time.Second})
	srv.Start()
	b.Cleanup(func() { srv.Close() })
	repo := testenv.NewRepo(b, "")
	if err := os.WriteFile(filepath.Join(repo.Dir, ".bgagents.toml"), []byte(fmt.Sprintf("[defaults]\nagent = \"test\"\nmax_concurrent = 64\n[agents.test]\ncommand = [%q, \"{prompt}\"]\n", testenv.TestAgent(b))), 0o644); err != nil {
		b.Fatal(err)
	}
	cl, srvSide := pipe()
	srv.ServeConn(srvSide)
	c := server.NewClient(context.Background(), cl)
	b.Cleanup(func() { c.Close() })
	if err := c.Call(context.Background(), server.MethodHello, server.HelloParams{}, nil); err != nil {
		b.Fatal(err)
	}
	return srv, c, repo
}

func benchWait(b *testing.B, c *server.Client, id string, state agents.State) {
	match := agentChanged(id, state)
	deadline := time.After(60 * time.Second)
	for {
		select {
		case n := <-c.Notes():
			if match(n) {
				return
			}
		case <-deadline:
			b.Fatalf("agent %s did not reach %s", id, state)
		}
	}
}
