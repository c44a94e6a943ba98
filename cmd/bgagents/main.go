// Command bgagents runs AI coding agents in the background, each in its own
// git worktree on its own branch, supervised by a per-user daemon that
// editors and this CLI talk to.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/server"
)

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }

// keepInheritedFDsFromChildren marks every descriptor this process
// inherited beyond stdin, stdout and stderr close-on-exec, so a daemon or
// shim started from here does not keep a caller's pipe open (a shell's
// `7>&1 | cat` would otherwise wait for the daemon to exit).
func keepInheritedFDsFromChildren() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}

func main() {
	keepInheritedFDsFromChildren()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cmd := newRootCmd()
	err := cmd.ExecuteContext(ctx)
	if err == nil {
		return
	}
	code := 1
	var ee *exitError
	var re *jsonrpc2.Error
	switch {
	case errors.As(err, &ee):
		code = ee.code
		if ee.err == nil {
			os.Exit(code)
		}
	case errors.As(err, &re):
		switch re.Code {
		case server.CodeAgentNotFound, server.CodeAmbiguousAgent, jsonrpc2.InvalidParams:
			code = 2
		}
		err = fmt.Errorf("%s", re.Message)
	case isUsage(err):
		code = 2
	}
	fmt.Fprintln(os.Stderr, "bgagents:", err)
	os.Exit(code)
}
