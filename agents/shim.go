package agents

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bgagents/bgagents/agents/providers"
)

// Files in an agent's state directory.
const (
	specFile    = "spec.json"   // what the shim runs, written by the daemon
	statusFile  = "status.json" // how the run ended, written by the shim
	agentPID    = "agent.pid"   // the agent's pid (= its process group)
	shimPIDFile = "shim.pid"    // the shim's pid, written by the daemon
	stdoutFile  = "stdout.log"
	stderrFile  = "stderr.log"
	eventsFile  = "events.jsonl"
	shimLog     = "shim.log"
)

// RunSpec is what the shim runs: written to spec.json by the daemon.
type RunSpec struct {
	Argv    []string      `json:"argv"`
	Env     []string      `json:"env"`
	Dir     string        `json:"dir"`
	Timeout time.Duration `json:"timeout"`
	Grace   time.Duration `json:"grace"`
	Run     int           `json:"run"`
	// What the agent's earlier runs used, so a daemon that re-adopts this
	// run does not count the run's own live usage as earlier usage.
	BaseUsage providers.Usage `json:"baseUsage"`
	BaseTurns int             `json:"baseTurns"`
	// Resumed is set when this run continues the vendor session.
	Resumed bool `json:"resumed,omitempty"`
}

// RunStatus is how a run ended: written atomically to status.json by the
// shim when the agent has exited.
type RunStatus struct {
	Run        int       `json:"run"`
	ExitCode   int       `json:"exitCode"`
	Signal     string    `json:"signal,omitempty"`
	Cancelled  bool      `json:"cancelled,omitempty"`
	TimedOut   bool      `json:"timedOut,omitempty"`
	Error      string    `json:"error,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
}

// writeFileAtomic writes data to path through a temporary file, fsync and
// rename, so a reader sees the old content or the new, never a part.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

func writeJSONAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return writeFileAtomic(path, append(data, '\n'))
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

// RunShim is the hidden `bgagents shim DIR` command: it runs the agent
// described by DIR/spec.json in its own process group, with stdin from
// /dev/null and output appended to DIR/stdout.log and DIR/stderr.log, and
// writes DIR/status.json atomically when the agent has exited. SIGTERM or
// SIGINT to the shim (cancel) and the timeout both stop the agent: SIGTERM
// to its process group, SIGKILL after the grace period. The shim outlives
// the daemon; the daemon re-adopts it through the files.
func RunShim(ctx context.Context, dir string) error {
	// Signals first, so a cancel that arrives while starting is not lost.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	var spec RunSpec
	if err := readJSON(filepath.Join(dir, specFile), &spec); err != nil {
		return fmt.Errorf("shim: %w", err)
	}
	st := RunStatus{Run: spec.Run, StartedAt: time.Now()}
	finish := func(err error) error {
		st.FinishedAt = time.Now()
		if err != nil {
			st.Error = err.Error()
			st.ExitCode = -1
		}
		if werr := writeJSONAtomic(filepath.Join(dir, statusFile), st); werr != nil {
			return fmt.Errorf("shim: %w", werr)
		}
		return err
	}
	if len(spec.Argv) == 0 {
		return finish(errors.New("empty command"))
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return finish(fmt.Errorf("open %s: %w", os.DevNull, err))
	}
	defer devnull.Close()
	openLog := func(name string) (*os.File, error) {
		return os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	}
	stdout, err := openLog(stdoutFile)
	if err != nil {
		return finish(fmt.Errorf("open output: %w", err))
	}
	defer stdout.Close()
	stderr, err := openLog(stderrFile)
	if err != nil {
		return finish(fmt.Errorf("open output: %w", err))
	}
	defer stderr.Close()

	cmd := exec.Command(spec.Argv[0], spec.Argv[1:]...)
	cmd.Dir = spec.Dir
	cmd.Env = spec.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = devnull, stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	select {
	case <-sigs:
		st.Cancelled = true
		return finish(nil)
	default:
	}
	if err := cmd.Start(); err != nil {
		return finish(fmt.Errorf("start %s: %w", spec.Argv[0], err))
	}
	pgid := cmd.Process.Pid
	if err := writeFileAtomic(filepath.Join(dir, agentPID), []byte(strconv.Itoa(pgid)+"\n")); err != nil {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	var timeout <-chan time.Time
	if spec.Timeout > 0 {
		t := time.NewTimer(spec.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	grace := spec.Grace
	if grace <= 0 {
		grace = 10 * time.Second
	}
	var kill <-chan time.Time
	stop := func() {
		if kill != nil {
			return
		}
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		t := time.NewTimer(grace)
		kill = t.C
	}
	var waitErr error
loop:
	for {
		select {
		case waitErr = <-done:
			break loop
		case <-sigs:
			st.Cancelled = true
			stop()
		case <-timeout:
			st.TimedOut = true
			stop()
		case <-kill:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		case <-ctx.Done():
			st.Cancelled = true
			stop()
		}
	}
	// Whatever the agent left behind in its process group goes with it.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)

	st.ExitCode = cmd.ProcessState.ExitCode()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		st.Signal = ws.Signal().String()
		st.ExitCode = 128 + int(ws.Signal())
	}
	var ee *exec.ExitError
	if waitErr != nil && !errors.As(waitErr, &ee) {
		st.Error = waitErr.Error()
	}
	return finish(nil)
}

// pidAlive reports whether pid is a live process (not a zombie).
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// The state is the field after the ")" that closes the command name.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// isShimFor reports whether pid is a shim running the agent in dir (guards
// against a recycled pid after a restart).
func isShimFor(pid int, dir string) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")
	if len(args) < 3 {
		return false
	}
	return args[len(args)-2] == "shim" && args[len(args)-1] == dir
}

// readPID reads a pid file.
func readPID(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}

// isAgentProcess reports whether pid still is the agent with this id (its
// environment names it): a pid file can outlive its process (a reboot,
// a crash) and the number be given to an unrelated process.
func isAgentProcess(pid int, id string) bool {
	if pid <= 0 || !pidAlive(pid) {
		return false
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		return false
	}
	want := "BGAGENTS_AGENT_ID=" + id
	for _, kv := range strings.Split(string(data), "\x00") {
		if kv == want {
			return true
		}
	}
	return false
}

// killAgentGroup SIGKILLs the agent's process group, but only when the
// recorded pid still is that agent.
func killAgentGroup(dir, id string) {
	if pid := readPID(filepath.Join(dir, agentPID)); isAgentProcess(pid, id) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
}
