package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// killGrace is how long a setup command's process group has between
// SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

// outputGrace bounds the wait for a command's output once its process
// group is gone (a process that left the group may still hold the pipe).
const outputGrace = time.Second

// tailLines and tailBytes bound the output a SetupError carries.
const (
	tailLines = 20
	tailBytes = 8 << 10
)

// SetupError is returned by RunSetup when a setup command cannot be
// started, fails or is stopped.
type SetupError struct {
	Index    int      // index of the command in RunSetup's cmds (0-based)
	Argv     []string // the command
	ExitCode int      // its exit code; -1 when it did not start or was stopped by a signal
	Output   string   // the last lines of its output (stdout and stderr)
	Err      error    // the cause: *exec.ExitError, a start error or the context's error
}

// Error names the command, how it ended and its last lines of output.
func (e *SetupError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "setup command %d (%s)", e.Index+1, FormatArgv(e.Argv))
	var exitErr *exec.ExitError
	switch {
	case e.ExitCode >= 0:
		fmt.Fprintf(&b, " failed with exit code %d", e.ExitCode)
	case errors.Is(e.Err, context.Canceled), errors.Is(e.Err, context.DeadlineExceeded):
		fmt.Fprintf(&b, " was stopped: %v", e.Err)
	case errors.As(e.Err, &exitErr):
		fmt.Fprintf(&b, " failed: %v", exitErr)
	default:
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	if e.Output != "" {
		b.WriteString("; last lines of its output:\n")
		b.WriteString(e.Output)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *SetupError) Unwrap() error { return e.Err }

// RunSetup runs the setup commands cmds one after another in dir and
// stops at the first that fails, returning a *SetupError.
//
// Each command is an argv list run without a shell: a program name without
// a "/" is looked up in the PATH of env, a relative path ("./bin/setup")
// is taken relative to dir. env is the whole environment (nil: the
// daemon's own). Standard input is /dev/null; standard output and error go,
// interleaved, to out (nil: discarded; its write errors are ignored).
// step, when not nil, is called before each command starts.
//
// Each command runs in its own process group. When ctx ends, the group gets
// SIGTERM, then SIGKILL after 5 s. When a command ends, whatever it left
// running in its group gets the same treatment, so no setup process
// outlives its step.
func RunSetup(ctx context.Context, dir string, env []string, cmds [][]string, out io.Writer, step func(i int, argv []string)) error {
	return RunSetupHooks(ctx, dir, env, cmds, out, SetupHooks{Step: step})
}

// SetupHooks are called by RunSetupHooks as the commands run.
type SetupHooks struct {
	// Step is called before each command starts.
	Step func(i int, argv []string)
	// Started is called with the process group of each command once it
	// has started, so that a caller can record it (a restarted daemon
	// kills a setup that outlived its predecessor with KillSetupGroup).
	Started func(pgid int)
	// Ended is called once that process group is gone.
	Ended func(pgid int)
}

// RunSetupHooks is RunSetup with hooks.
func RunSetupHooks(ctx context.Context, dir string, env []string, cmds [][]string, out io.Writer, hooks SetupHooks) error {
	step := hooks.Step
	if out == nil {
		out = io.Discard
	}
	for i, argv := range cmds {
		if err := ctx.Err(); err != nil {
			return &SetupError{Index: i, Argv: argv, ExitCode: -1, Err: err}
		}
		if step != nil {
			step(i, argv)
		}
		if err := runSetupCommand(ctx, dir, env, i, argv, out, hooks); err != nil {
			return err
		}
	}
	return nil
}

func runSetupCommand(ctx context.Context, dir string, env []string, i int, argv []string, out io.Writer, hooks SetupHooks) error {
	fail := func(err error) error {
		return &SetupError{Index: i, Argv: argv, ExitCode: -1, Err: err}
	}
	if len(argv) == 0 || argv[0] == "" {
		return fail(errors.New("empty command"))
	}
	path, err := resolveProgram(argv[0], dir, env)
	if err != nil {
		return fail(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return fail(err)
	}
	defer pr.Close()
	cmd := &exec.Cmd{
		Path:        path,
		Args:        argv,
		Dir:         dir,
		Env:         env,
		Stdout:      pw,
		Stderr:      pw,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	err = cmd.Start()
	pw.Close()
	if err != nil {
		return fail(err)
	}
	pgid := cmd.Process.Pid
	if hooks.Started != nil {
		hooks.Started(pgid)
	}

	tail := &tailBuffer{max: tailBytes}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		io.Copy(io.MultiWriter(ignoreErrors{out}, tail), pr)
	}()

	exited := make(chan struct{})
	var termSent time.Time // set by the watcher before exited is closed
	var watcher sync.WaitGroup
	watcher.Go(func() {
		select {
		case <-ctx.Done():
			termSent = time.Now()
			syscall.Kill(-pgid, syscall.SIGTERM)
			t := time.NewTimer(killGrace)
			defer t.Stop()
			select {
			case <-exited:
			case <-t.C:
				syscall.Kill(-pgid, syscall.SIGKILL)
			}
		case <-exited:
		}
	})
	werr := cmd.Wait()
	close(exited)
	watcher.Wait()
	reapGroup(pgid, termSent)
	if hooks.Ended != nil {
		hooks.Ended(pgid)
	}

	select {
	case <-copied:
	case <-time.After(outputGrace):
		pr.Close()
		<-copied
	}

	if werr == nil && ctx.Err() == nil {
		return nil
	}
	e := &SetupError{Index: i, Argv: argv, ExitCode: -1, Output: tail.lastLines(tailLines), Err: werr}
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		e.Err = ctx.Err()
	case errors.As(werr, &exitErr):
		e.ExitCode = exitErr.ExitCode() // -1 when killed by a signal
	}
	return e
}

// ProcessStartTime returns the start time of process pid in clock ticks
// since boot (field 22 of /proc/PID/stat), or 0 when pid does not exist.
// With the pid it identifies a process: pids are reused, start times of
// one pid are not.
func ProcessStartTime(pid int) uint64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0
	}
	n, _ := strconv.ParseUint(f[19], 10, 64)
	return n
}

// KillSetupGroup stops what is left of the process group pgid of a setup
// command that started at start (ProcessStartTime of its leader): SIGTERM
// to the group, then, when members are still there after a grace period
// of 5 s (or when ctx ends first), SIGKILL. It waits on the members'
// exits (pidfd), not by sleeping, and returns once the group is gone or
// ctx has ended. It kills nothing when the leader's pid now belongs to
// another process; a group whose leader has exited is still the setup's
// (Linux does not reuse a pid while a process group of that id exists).
// It reports whether it found the group.
func KillSetupGroup(ctx context.Context, pgid int, start uint64) bool {
	if pgid <= 0 || !groupAlive(pgid) {
		return false
	}
	if st := ProcessStartTime(pgid); st != 0 && st != start {
		return false // the pid was reused by a new process group leader
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	if waitGroupGone(ctx, pgid, time.Now().Add(killGrace)) {
		return true
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
	waitGroupGone(ctx, pgid, time.Time{})
	return true
}

// reapGroup ends what is left of process group pgid once its leader has
// exited: SIGTERM (unless sent at termSent), then SIGKILL when the group
// still has live members killGrace after the SIGTERM.
func reapGroup(pgid int, termSent time.Time) {
	if !groupAlive(pgid) {
		return
	}
	if termSent.IsZero() {
		termSent = time.Now()
		syscall.Kill(-pgid, syscall.SIGTERM)
	}
	if !waitGroupGone(context.Background(), pgid, termSent.Add(killGrace)) {
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// waitSlice bounds one wait of waitGroupGone, so that it notices ctx
// ending and members that joined the group after it looked.
const waitSlice = 100 * time.Millisecond

// waitGroupGone waits until process group pgid has no live member and
// reports true, or reports false when deadline (zero: none) passes or ctx
// ends first. It waits on the members' pidfds, so it wakes when one
// exits; without pidfds (kernels before 5.3) it looks again every
// waitSlice.
func waitGroupGone(ctx context.Context, pgid int, deadline time.Time) bool {
	for {
		pids := groupMembers(pgid)
		if len(pids) == 0 {
			return true
		}
		wait := waitSlice
		if !deadline.IsZero() {
			wait = min(wait, time.Until(deadline))
		}
		if wait <= 0 || ctx.Err() != nil {
			return false
		}
		fds := make([]unix.PollFd, 0, len(pids))
		pidfds := true
		for _, pid := range pids {
			fd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				if !errors.Is(err, unix.ESRCH) {
					pidfds = false // no pidfds here: look again after a while
				}
				continue
			}
			fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
		switch {
		case len(fds) > 0 && pidfds:
			_, _ = unix.Poll(fds, int(wait.Milliseconds())+1)
		case !pidfds:
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		for _, f := range fds {
			unix.Close(int(f.Fd))
		}
	}
}

// groupAlive reports whether process group pgid has a member that is not
// a zombie. Members that exited wait as zombies until their new parent
// (init, or a subreaper) reaps them, which may take a while; kill(-pgid,
// 0) counts them, so /proc is read to tell them apart.
func groupAlive(pgid int) bool {
	if syscall.Kill(-pgid, 0) != nil {
		return false
	}
	return len(groupMembers(pgid)) > 0
}

// groupMembers returns the pids of the members of process group pgid that
// are not zombies (read from /proc; the group's id itself when /proc
// cannot be read and the group exists).
func groupMembers(pgid int) []int {
	if syscall.Kill(-pgid, 0) != nil {
		return nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return []int{pgid}
	}
	want := strconv.Itoa(pgid)
	var pids []int
	for _, e := range ents {
		if c := e.Name()[0]; c < '0' || c > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) >= 3 && f[2] == want && f[0] != "Z" && f[0] != "X" {
			if pid, err := strconv.Atoi(e.Name()); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// resolveProgram finds the executable for argv[0]: a path with a "/" is
// taken relative to dir, a bare name is looked up in env's PATH (the
// daemon's when env has none). Relative PATH entries are skipped.
func resolveProgram(name, dir string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", err
		}
		return p, nil
	}
	pathVar, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathVar, found = v, true
		}
	}
	if !found && env == nil {
		pathVar = os.Getenv("PATH")
	}
	for _, d := range filepath.SplitList(pathVar) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		p := filepath.Join(d, name)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q not found in PATH", name)
}

// checkExecutable reports why p cannot be run, or nil.
func checkExecutable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s does not exist", p)
		}
		return err
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory", p)
	}
	if fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not executable", p)
	}
	return nil
}

// FormatArgv renders argv for messages, quoting the arguments that need it.
func FormatArgv(argv []string) string {
	parts := make([]string, len(argv))
	for i, a := range argv {
		if a == "" || strings.ContainsAny(a, " \t\n\"'\\$`*?[]{}()<>|&;#~") {
			a = strconv.Quote(a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}

// ignoreErrors is a writer that never fails, so that a broken out cannot
// stall a command on a full pipe.
type ignoreErrors struct{ w io.Writer }

func (w ignoreErrors) Write(p []byte) (int, error) {
	w.w.Write(p)
	return len(p), nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= t.max {
		t.buf = append(t.buf[:0], p[len(p)-t.max:]...)
		return n, nil
	}
	if over := len(t.buf) + len(p) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	t.buf = append(t.buf, p...)
	return n, nil
}

// lastLines returns up to n last non-empty lines, without trailing
// white space.
func (t *tailBuffer) lastLines(n int) string {
	lines := strings.Split(strings.ReplaceAll(string(t.buf), "\r\n", "\n"), "\n")
	var keep []string
	for i := len(lines) - 1; i >= 0 && len(keep) < n; i-- {
		if l := strings.TrimRight(lines[i], " \t\r"); l != "" {
			keep = append(keep, l)
		}
	}
	for i, j := 0, len(keep)-1; i < j; i, j = i+1, j-1 {
		keep[i], keep[j] = keep[j], keep[i]
	}
	return strings.Join(keep, "\n")
}
