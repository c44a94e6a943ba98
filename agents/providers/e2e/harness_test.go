package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/agents/providers/fakemodel"
	"github.com/bgagents/bgagents/internal/testenv"
	"github.com/bgagents/bgagents/server"
)

func TestMain(m *testing.M) {
	testenv.Setup()
	code := m.Run()
	testenv.Cleanup()
	os.Exit(code)
}

// runTimeout bounds one run of a CLI (spawn to stop). The CLIs answer in
// seconds against the fake server; OpenCode takes the longest to start.
const runTimeout = 3 * time.Minute

// cliDir is where .ci/install-agent-clis puts the CLIs.
func cliDir() string {
	if d := os.Getenv("BGAGENTS_CLI_DIR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", ".cache", "agent-clis")
}

// requireCLI returns the absolute path of the installed executable exe of
// provider, or skips the test: with -short, when the provider is not in
// the build, or when the CLI is not installed.
func requireCLI(t *testing.T, provider, exe string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real agent CLI: not with -short")
	}
	if _, err := providers.Get(provider); err != nil {
		t.Skipf("the %s provider is not in this build: %v", provider, err)
	}
	dir, err := filepath.Abs(cliDir())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "node_modules", ".bin", exe)
	if st, err := os.Stat(p); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Skipf("%s is not installed in %s: run .ci/install-agent-clis (or point BGAGENTS_CLI_DIR at its folder)", exe, dir)
	}
	return p
}

// startFake starts a fake model server with script, closed after the
// agents of the test are stopped (cleanups run last-in first-out).
func startFake(t *testing.T, script ...fakemodel.Turn) *fakemodel.Server {
	t.Helper()
	f := fakemodel.Start(script...)
	t.Cleanup(f.Close)
	return f
}

// privateHome makes a HOME and XDG directories for one CLI, so it reads
// none of the developer's configuration and writes nothing outside the
// test's temporary directory.
func privateHome(t *testing.T) (string, map[string]string) {
	t.Helper()
	root := t.TempDir()
	env := map[string]string{"HOME": filepath.Join(root, "home")}
	for _, x := range []string{"CONFIG", "DATA", "CACHE", "STATE"} {
		env["XDG_"+x+"_HOME"] = filepath.Join(root, "xdg", strings.ToLower(x))
	}
	for _, d := range env {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return env["HOME"], env
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// agentTOML is an [agents.NAME] table of .bgagents.toml.
type agentTOML struct {
	name, binary, model, permissionMode string
	env                                 map[string]string
}

func (a agentTOML) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "\n[agents.%s]\nbinary = %s\n", a.name, tomlString(a.binary))
	if a.model != "" {
		fmt.Fprintf(&b, "model = %s\n", tomlString(a.model))
	}
	if a.permissionMode != "" {
		fmt.Fprintf(&b, "permission_mode = %s\n", tomlString(a.permissionMode))
	}
	keys := make([]string, 0, len(a.env))
	for k := range a.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b.WriteString("env = {")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, " %s = %s", k, tomlString(a.env[k]))
	}
	b.WriteString(" }\n")
	return b.String()
}

// tomlString quotes s as a TOML basic string (JSON's escapes are TOML's).
func tomlString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err)
	}
	// JSON escapes <, > and & as \u003c etc., which TOML reads the same.
	return string(b)
}

// daemon is the bgagents daemon running inside the test process, with the
// built bgagents binary as the shim that runs the real CLI.
type daemon struct {
	t    *testing.T
	srv  *server.Server
	home string
	c    *server.Client
	logs *syncBuffer
}

// startDaemon starts a daemon for one test. When the test fails, the
// daemon's log, every agent's events and output, and what the fake server
// received are logged. Live agents are cancelled at the end.
func startDaemon(t *testing.T, fake *fakemodel.Server) *daemon {
	t.Helper()
	home := t.TempDir()
	logs := &syncBuffer{}
	logger := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()), zapcore.AddSync(logs), zap.DebugLevel))
	srv := server.New(server.Options{
		Paths: server.Paths{State: home, Run: filepath.Join(home, "run")},
		Shim:  []string{testenv.Bgagents(t)}, Grace: 2 * time.Second,
		Logger: logger, MaxMessage: 1 << 20,
	})
	srv.Start()
	a, b := net.Pipe()
	srv.ServeConn(a)
	c := server.NewClient(context.Background(), b)
	d := &daemon{t: t, srv: srv, home: home, c: c, logs: logs}
	t.Cleanup(func() {
		d.cancelLive()
		c.Close()
		if err := srv.Close(); err != nil {
			t.Errorf("close daemon: %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			d.dump(fake)
		}
	})
	return d
}

func (d *daemon) ctx(within time.Duration) context.Context {
	return testenv.Context(d.t, within)
}

func (d *daemon) spawn(p server.SpawnParams) *agents.Agent {
	d.t.Helper()
	var res server.AgentResult
	if err := d.c.Call(d.ctx(30*time.Second), server.MethodSpawn, p, &res); err != nil {
		d.t.Fatalf("spawn %q: %v", p.Task, err)
	}
	return res.Agent
}

// wait blocks until the agent is no longer queued, provisioning or
// running: it ended, or it needs input.
func (d *daemon) wait(id string) *agents.Agent {
	d.t.Helper()
	var res server.AgentResult
	if err := d.c.Call(d.ctx(runTimeout), server.MethodWait, server.IDParams{ID: id}, &res); err != nil {
		d.t.Fatalf("wait for agent %s: %v", id, err)
	}
	return res.Agent
}

func (d *daemon) message(p server.MessageParams) *agents.Agent {
	d.t.Helper()
	var res server.AgentResult
	if err := d.c.Call(d.ctx(30*time.Second), server.MethodMessage, p, &res); err != nil {
		d.t.Fatalf("message %s: %v", p.ID, err)
	}
	return res.Agent
}

func (d *daemon) events(id string) []agents.Event {
	var res server.LogResult
	if err := d.c.Call(d.ctx(30*time.Second), server.MethodLog, server.LogParams{ID: id}, &res); err != nil {
		d.t.Errorf("log of agent %s: %v", id, err)
	}
	return res.Events
}

// cancelLive cancels every agent still queued, provisioning, running or
// waiting for input, so no CLI outlives the test.
func (d *daemon) cancelLive() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var res server.ListResult
	live := []agents.State{agents.StateQueued, agents.StateProvisioning, agents.StateRunning, agents.StateNeedsInput}
	if err := d.c.Call(ctx, server.MethodList, server.ListParams{States: live}, &res); err != nil {
		return
	}
	for _, a := range res.Agents {
		_ = d.c.Call(ctx, server.MethodCancel, server.IDParams{ID: a.ID}, nil)
	}
}

// dump logs what helps to understand a failure.
func (d *daemon) dump(fake *fakemodel.Server) {
	t := d.t
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var res server.ListResult
	if err := d.c.Call(ctx, server.MethodList, server.ListParams{}, &res); err == nil {
		for _, a := range res.Agents {
			rec, _ := json.MarshalIndent(a, "", "  ")
			t.Logf("agent %s record:\n%s", a.ID, rec)
			var b strings.Builder
			for _, ev := range d.events(a.ID) {
				line, _ := json.Marshal(ev)
				b.WriteString("  " + truncate(string(line), 600) + "\n")
			}
			t.Logf("agent %s events:\n%s", a.ID, b.String())
			for _, f := range []string{"stderr.log", "shim.log", "spec.json"} {
				data, err := os.ReadFile(filepath.Join(d.home, "agents", a.ID, f))
				if err == nil && len(data) > 0 {
					t.Logf("agent %s %s:\n%s", a.ID, f, tail(string(data), 4000))
				}
			}
		}
	}
	if fake != nil {
		t.Logf("fake model server:\n%s", fake.Describe())
	}
	t.Logf("daemon log:\n%s", tail(d.logs.String(), 8000))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// syncBuffer is a bytes.Buffer safe for concurrent use: the daemon logs
// into it from its goroutines, also after the test ended.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Checks shared by the tests.

// requireState fails the test unless a is in state want.
func requireState(t *testing.T, a *agents.Agent, want agents.State) {
	t.Helper()
	if a.State != want {
		t.Fatalf("agent %s is %s (error %q, result %q), want %s", a.Name, a.State, a.Error, a.Result, want)
	}
}

// checkCommitted checks that the agent's branch holds one commit adding
// file with content, and that the main checkout was not touched.
func checkCommitted(t *testing.T, repo *testenv.Repo, a *agents.Agent, file, content string) {
	t.Helper()
	if got := testenv.Git(t, repo.Dir, "show", a.Branch+":"+file); got != strings.TrimRight(content, "\n") {
		t.Errorf("%s on branch %s is %q, want %q", file, a.Branch, got, content)
	}
	if files := testenv.Git(t, repo.Dir, "diff", "--name-only", a.BaseCommit, a.Branch); files != file {
		t.Errorf("the branch changes %q, want only %s (did the CLI leave files in the worktree?)", files, file)
	}
	if a.Diff.Commits < 1 || a.Diff.Files != 1 {
		t.Errorf("diff stat %+v, want a commit changing 1 file", a.Diff)
	}
	if _, err := os.Stat(filepath.Join(repo.Dir, file)); err == nil {
		t.Errorf("%s appeared in the main checkout", file)
	}
}

// checkFakeUsed checks that the fake server answered every scripted turn
// and saw nothing it did not expect.
func checkFakeUsed(t *testing.T, fake *fakemodel.Server) {
	t.Helper()
	if n := fake.Remaining(); n != 0 {
		t.Errorf("%d scripted turns were not asked for:\n%s", n, fake.Describe())
	}
	if errs := fake.Errors(); len(errs) > 0 {
		t.Errorf("the fake model server saw unexpected requests: %s", strings.Join(errs, "; "))
	}
}

// turnUsage adds up the usage the fake server reported in the answers to
// reqs.
func turnUsage(reqs []fakemodel.Request) (in, out int64) {
	for _, r := range reqs {
		in += r.Usage.InputTokens
		out += r.Usage.OutputTokens
	}
	return in, out
}

// checkTokens checks the tokens recorded for an agent.
func checkTokens(t *testing.T, a *agents.Agent, in, out int64) {
	t.Helper()
	if a.Usage.InputTokens+a.Usage.CacheReadTokens+a.Usage.CacheWriteTokens != in || a.Usage.OutputTokens != out {
		t.Errorf("usage %+v, want %d input and %d output tokens (as the fake server reported)", a.Usage, in, out)
	}
}

// requireEvent fails unless the agent's event log has an event that
// match accepts.
func (d *daemon) requireEvent(id, what string, match func(agents.Event) bool) {
	d.t.Helper()
	for _, ev := range d.events(id) {
		if match(ev) {
			return
		}
	}
	d.t.Errorf("agent %s: no event %s in its log", id, what)
}

// mustContain fails unless body contains every one of wants.
func mustContain(t *testing.T, what string, body []byte, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !bytes.Contains(body, []byte(w)) {
			t.Errorf("%s does not contain %s", what, strconv.Quote(w))
		}
	}
}
