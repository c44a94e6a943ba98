package server

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// Paths says where the daemon keeps its files.
type Paths struct {
	// State holds the store, the log and one directory per agent.
	State string
	// Run holds the socket and the lock files; it is created 0700.
	Run string
}

// Socket is the daemon's Unix socket.
func (p Paths) Socket() string { return filepath.Join(p.Run, "daemon.sock") }

// DaemonLock is held by the running daemon for its whole life.
func (p Paths) DaemonLock() string { return filepath.Join(p.Run, "daemon.lock") }

// StartLock serialises clients that start the daemon.
func (p Paths) StartLock() string { return filepath.Join(p.Run, "start.lock") }

// Log is the daemon's log file.
func (p Paths) Log() string { return filepath.Join(p.State, "daemon.log") }

// DefaultPaths returns $BGAGENTS_HOME (state) and $BGAGENTS_HOME/run
// (socket) when BGAGENTS_HOME is set; else $XDG_STATE_HOME/bgagents (or
// ~/.local/state/bgagents) and $XDG_RUNTIME_DIR/bgagents (or the user cache
// dir's bgagents/run).
func DefaultPaths() (Paths, error) {
	if h := os.Getenv("BGAGENTS_HOME"); h != "" {
		h, err := filepath.Abs(h)
		if err != nil {
			return Paths{}, fmt.Errorf("BGAGENTS_HOME: %w", err)
		}
		return Paths{State: h, Run: filepath.Join(h, "run")}, nil
	}
	var p Paths
	if x := os.Getenv("XDG_STATE_HOME"); x != "" {
		p.State = filepath.Join(x, "bgagents")
	} else {
		home, err := os.UserHomeDir()
		if err != nil {
			return Paths{}, fmt.Errorf("find state directory: %w", err)
		}
		p.State = filepath.Join(home, ".local", "state", "bgagents")
	}
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" {
		p.Run = filepath.Join(x, "bgagents")
	} else {
		cache, err := os.UserCacheDir()
		if err != nil {
			return Paths{}, fmt.Errorf("find runtime directory: %w", err)
		}
		p.Run = filepath.Join(cache, "bgagents", "run")
	}
	return p, nil
}

// ensureDirs creates the state and run directories; the run directory must
// be a 0700 directory owned by this user.
func (p Paths) ensureDirs() error {
	if err := os.MkdirAll(p.State, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	return p.ensureRun()
}

func (p Paths) ensureRun() error {
	if err := os.MkdirAll(p.Run, 0o700); err != nil {
		return fmt.Errorf("create runtime directory: %w", err)
	}
	st, err := os.Stat(p.Run)
	if err != nil {
		return fmt.Errorf("runtime directory: %w", err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Getuid() {
		return fmt.Errorf("runtime directory %s belongs to uid %d, not to you (uid %d); remove it or set BGAGENTS_HOME", p.Run, sys.Uid, os.Getuid())
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(p.Run, 0o700); err != nil {
			return fmt.Errorf("runtime directory: %w", err)
		}
	}
	return nil
}
