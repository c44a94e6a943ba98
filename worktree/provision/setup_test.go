package provision

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testEnv(extra ...string) []string {
	return append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, extra...)
}

func TestRunSetupSuccess(t *testing.T) {
	dir := realTempDir(t)
	writeFile(t, filepath.Join(dir, "bin", "setup.sh"), "#!/bin/sh\necho \"setup $1 in $(pwd) port=$PORT\"\n", 0o755)
	tools := realTempDir(t)
	writeFile(t, filepath.Join(tools, "mytool"), "#!/bin/sh\necho mytool ran\n", 0o755)

	var out bytes.Buffer
	var steps []string
	err := RunSetup(context.Background(), dir, testEnv("PORT=4100", "PATH=/usr/bin:/bin:"+tools), [][]string{
		{"sh", "-c", "echo out; echo err >&2; cat; echo stdin-was-empty"},
		{"./bin/setup.sh", "first"},
		{"mytool"},
	}, &out, func(i int, argv []string) { steps = append(steps, strconv.Itoa(i)+":"+argv[0]) })
	if err != nil {
		t.Fatal(err)
	}
	if want := "0:sh 1:./bin/setup.sh 2:mytool"; strings.Join(steps, " ") != want {
		t.Errorf("steps = %q; want %q", steps, want)
	}
	for _, want := range []string{"out\n", "err\n", "stdin-was-empty\n", "setup first in " + dir + " port=4100\n", "mytool ran\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if err := RunSetup(context.Background(), dir, nil, nil, nil, nil); err != nil {
		t.Errorf("no commands: %v", err)
	}
}

func TestRunSetupFailure(t *testing.T) {
	dir := realTempDir(t)
	var out bytes.Buffer
	ran := 0
	err := RunSetup(context.Background(), dir, testEnv(), [][]string{
		{"sh", "-c", "for i in $(seq 1 100); do echo noise $i; done; echo 'npm ERR! missing script: prepare' >&2; exit 3"},
		{"sh", "-c", "echo should not run"},
	}, &out, func(int, []string) { ran++ })
	var se *SetupError
	if !errors.As(err, &se) {
		t.Fatalf("err = %v (%T); want *SetupError", err, err)
	}
	if se.Index != 0 || se.ExitCode != 3 || ran != 1 {
		t.Errorf("Index %d ExitCode %d ran %d; want 0 3 1", se.Index, se.ExitCode, ran)
	}
	msg := err.Error()
	for _, want := range []string{"setup command 1 (sh -c", "exit code 3", "npm ERR! missing script: prepare", "noise 100"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "noise 50\n") {
		t.Errorf("error carries the whole output, not its last lines:\n%s", msg)
	}
	if strings.Contains(out.String(), "should not run") {
		t.Error("the command after the failure ran")
	}

	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"no-such-program-bgagents"}, `setup command 1 (no-such-program-bgagents): program "no-such-program-bgagents" not found in PATH`},
		{[]string{"./missing.sh"}, filepath.Join(dir, "missing.sh") + " does not exist"},
		{[]string{}, "empty command"},
	} {
		err := RunSetup(context.Background(), dir, testEnv(), [][]string{tc.argv}, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("RunSetup(%q) = %v; want error containing %q", tc.argv, err, tc.want)
		}
	}
}

// alive reports whether pid runs (a zombie waiting for its reaper does not
// count).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}

func readPid(t *testing.T, path string) int {
	t.Helper()
	pid, err := strconv.Atoi(strings.TrimSpace(readFile(t, path)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestRunSetupCancelKillsGroup(t *testing.T) {
	t.Parallel() // waits the 5 s between SIGTERM and SIGKILL
	dir := realTempDir(t)
	pidFile := filepath.Join(dir, "child.pid")
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for !strings.Contains(out.String(), "started") {
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	start := time.Now()
	// The shell and its child both ignore SIGTERM: only SIGKILL ends them.
	err := RunSetup(ctx, dir, testEnv(), [][]string{
		{"sh", "-c", `trap "" TERM; sleep 60 & echo $! > child.pid; echo started; wait`},
	}, out, nil)
	took := time.Since(start)
	var se *SetupError
	if !errors.As(err, &se) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want a *SetupError wrapping context.Canceled", err)
	}
	if !strings.Contains(err.Error(), "was stopped: context canceled") {
		t.Errorf("error: %v", err)
	}
	// SIGKILL comes only after the grace period (how much later depends on
	// the machine's load, so there is no upper bound here).
	if took < killGrace {
		t.Errorf("RunSetup returned after %v; want SIGKILL only after %v", took, killGrace)
	}
	pid := readPid(t, pidFile)
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("child %d survived the cancel", pid)
	}
}

func TestRunSetupEndsLeftovers(t *testing.T) {
	dir := realTempDir(t)
	start := time.Now()
	// A command that starts a background process holding its output and
	// exits at once: the step ends, and so does the leftover.
	err := RunSetup(context.Background(), dir, testEnv(), [][]string{
		{"sh", "-c", `sleep 60 & echo $! > bg.pid; echo done`},
	}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The leftover sleeps 60 s: the step must not wait for it.
	if took := time.Since(start); took > 30*time.Second {
		t.Errorf("RunSetup took %v: it waited for the leftover", took)
	}
	pid := readPid(t, filepath.Join(dir, "bg.pid"))
	deadline := time.Now().Add(2 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("background process %d outlived its setup step", pid)
	}
}

func TestFormatArgv(t *testing.T) {
	if got, want := FormatArgv([]string{"npm", "run", "prepare"}), "npm run prepare"; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
	if got, want := FormatArgv([]string{"sh", "-c", "echo hi", ""}), `sh -c "echo hi" ""`; got != want {
		t.Errorf("got %q; want %q", got, want)
	}
}

// Started reports each command's process group; KillSetupGroup kills such
// a group, but never a process that merely reuses its pid.
func TestSetupHooksAndKillSetupGroup(t *testing.T) {
	dir := t.TempDir()
	var started, ended []int
	err := RunSetupHooks(context.Background(), dir, testEnv(), [][]string{{"true"}, {"true"}}, nil, SetupHooks{
		Started: func(pgid int) { started = append(started, pgid) },
		Ended:   func(pgid int) { ended = append(ended, pgid) },
	})
	if err != nil || len(started) != 2 || !slices.Equal(started, ended) {
		t.Fatalf("err %v, started %v, ended %v", err, started, ended)
	}

	var pgid int
	startedCh := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- RunSetupHooks(ctx, dir, testEnv(), [][]string{{"sleep", "600"}}, nil, SetupHooks{
			Started: func(p int) { pgid = p; close(startedCh) },
		})
	}()
	<-startedCh
	start := ProcessStartTime(pgid)
	if start == 0 {
		t.Fatal("no start time")
	}
	if KillSetupGroup(context.Background(), pgid, start+1) {
		t.Error("killed a group whose leader started at another time")
	}
	if !groupAlive(pgid) {
		t.Fatal("the group died")
	}
	if !KillSetupGroup(testContext(t), pgid, start) {
		t.Error("did not find the group")
	}
	if groupAlive(pgid) {
		t.Error("the group still lives")
	}
	if err := <-done; err == nil {
		t.Error("the killed setup succeeded")
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// readyWriter closes ready when the output has a line "ready".
type readyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	ready chan struct{}
}

func (w *readyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Write(p); w.ready != nil && strings.Contains(w.buf.String(), "ready\n") {
		close(w.ready)
		w.ready = nil
	}
	return len(p), nil
}

// startSetupGroup runs script as a setup command and returns its process
// group and leader's start time once it printed "ready", and where its
// result arrives.
func startSetupGroup(t *testing.T, dir, script string) (int, uint64, <-chan error) {
	t.Helper()
	ready := make(chan struct{})
	w := &readyWriter{ready: ready}
	pgids := make(chan int, 1)
	done := make(chan error, 1)
	go func() {
		done <- RunSetupHooks(context.Background(), dir, testEnv(), [][]string{{"sh", "-c", script}}, w, SetupHooks{
			Started: func(p int) { pgids <- p },
		})
	}()
	pgid := <-pgids
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("the setup ended before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		syscall.Kill(-pgid, syscall.SIGKILL)
		t.Fatal("the setup never got ready")
	}
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	return pgid, ProcessStartTime(pgid), done
}

// KillSetupGroup asks first: SIGTERM to the group, and a group that ends
// on it is not killed; a group that ignores it gets SIGKILL after the
// grace period. Either way it returns once the group is gone.
func TestKillSetupGroupTermsFirst(t *testing.T) {
	t.Parallel() // the second case waits the 5 s grace
	dir := realTempDir(t)
	pgid, start, done := startSetupGroup(t, dir, `trap 'echo term > got-term; kill $! 2>/dev/null; exit 0' TERM; sleep 600 & echo ready; wait`)
	t0 := time.Now()
	if !KillSetupGroup(testContext(t), pgid, start) {
		t.Fatal("did not find the group")
	}
	if took := time.Since(t0); took >= killGrace {
		t.Errorf("KillSetupGroup took %v for a group that ends on SIGTERM", took)
	}
	if groupAlive(pgid) {
		t.Error("the group still lives")
	}
	if _, err := os.Stat(filepath.Join(dir, "got-term")); err != nil {
		t.Errorf("the setup never saw SIGTERM (killed outright?): %v", err)
	}
	if err := <-done; err != nil {
		t.Errorf("the setup that exited 0 on SIGTERM: %v", err)
	}

	pgid, start, done = startSetupGroup(t, dir, `trap '' TERM; sleep 600 & echo ready; wait`)
	t0 = time.Now()
	if !KillSetupGroup(testContext(t), pgid, start) {
		t.Fatal("did not find the group")
	}
	if took := time.Since(t0); took < killGrace || took > killGrace+5*time.Second {
		t.Errorf("KillSetupGroup took %v; want SIGKILL after %v", took, killGrace)
	}
	if groupAlive(pgid) {
		t.Error("the group that ignores SIGTERM still lives")
	}
	if err := <-done; err == nil {
		t.Error("the killed setup succeeded")
	}
}
