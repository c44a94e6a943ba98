package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"go.lsp.dev/jsonrpc2"
	"go.uber.org/zap"

	"github.com/bgagents/bgagents/agents"
)

// Options configures a Server.
type Options struct {
	Paths  Paths
	Logger *zap.Logger
	// Shim is the command that runs an agent's shim (default: this binary).
	Shim []string
	// Grace is the time between SIGTERM and SIGKILL when cancelling.
	Grace time.Duration
	// MaxMessage caps one JSON-RPC message (default DefaultMaxMessage).
	MaxMessage int
}

// Server is the daemon: it owns the manager and serves sessions.
type Server struct {
	opts  Options
	log   *zap.Logger
	ready chan struct{} // closed when mgr is set (or failed)
	mgr   *agents.Manager
	err   error // why the manager could not start (set before ready closes)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex // guards sessions and nextID
	sessions map[*Session]struct{}
	nextID   int
}

// New returns a server; nothing runs until Serve or ServeConn.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if opts.MaxMessage <= 0 {
		opts.MaxMessage = DefaultMaxMessage
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts: opts, log: opts.Logger, ready: make(chan struct{}),
		ctx: ctx, cancel: cancel, sessions: map[*Session]struct{}{},
	}
}

// Start builds the manager and re-adopts agents, in the background, so the
// socket can answer (and wait) meanwhile.
func (s *Server) Start() {
	go func() {
		defer close(s.ready)
		mgr, err := agents.NewManager(s.ctx, agents.Options{
			Home: s.opts.Paths.State, Shim: s.opts.Shim, Grace: s.opts.Grace, Logger: s.log,
		})
		if err != nil {
			s.err = err
			s.log.Error("start manager", zap.Error(err))
			return
		}
		if err := mgr.Start(s.ctx); err != nil {
			s.log.Error("re-adopt agents", zap.Error(err))
		}
		s.mgr = mgr
	}()
}

// Manager waits until the manager is ready.
func (s *Server) Manager(ctx context.Context) (*agents.Manager, error) {
	select {
	case <-s.ready:
		if s.err != nil {
			return nil, jsonrpc2.Errorf(CodeNotReady, "the daemon could not open its store: %v; see %s", s.err, s.opts.Paths.Log())
		}
		return s.mgr, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.ctx.Done():
		return nil, jsonrpc2.NewError(CodeShutdown, "the daemon is shutting down")
	}
}

// Done is closed when the server is shutting down.
func (s *Server) Done() <-chan struct{} { return s.ctx.Done() }

// Close ends every session and closes the manager. Agents keep running.
func (s *Server) Close() error {
	s.cancel()
	s.mu.Lock()
	for sess := range s.sessions {
		sess.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	<-s.ready
	if s.mgr != nil {
		return s.mgr.Close()
	}
	return nil
}

// ErrAlreadyRunning is returned by Listen when another daemon is serving.
var ErrAlreadyRunning = errors.New("a bgagents daemon is already running")

// Listen takes the daemon lock and binds the socket (0600 in a 0700
// directory), replacing a stale socket file. The returned unlock releases
// the daemon lock.
func Listen(p Paths) (net.Listener, func(), error) {
	if err := p.ensureDirs(); err != nil {
		return nil, nil, err
	}
	lock := flock.New(p.DaemonLock())
	ok, err := lock.TryLock()
	if err != nil {
		return nil, nil, fmt.Errorf("take daemon lock %s: %w", p.DaemonLock(), err)
	}
	if !ok {
		return nil, nil, fmt.Errorf("%w (socket %s); stop it with `bgagents daemon --stop`", ErrAlreadyRunning, p.Socket())
	}
	unlock := func() { _ = lock.Unlock() }
	sock := p.Socket()
	if c, err := net.DialTimeout("unix", sock, time.Second); err == nil {
		c.Close()
		unlock()
		return nil, nil, fmt.Errorf("%w (socket %s answers)", ErrAlreadyRunning, sock)
	}
	if err := os.Remove(sock); err != nil && !errors.Is(err, os.ErrNotExist) {
		unlock()
		return nil, nil, fmt.Errorf("remove stale socket %s: %w", sock, err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", sock)
	syscall.Umask(old)
	if err != nil {
		unlock()
		return nil, nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	if err := os.Chmod(sock, 0o600); err != nil {
		ln.Close()
		unlock()
		return nil, nil, fmt.Errorf("listen on %s: %w", sock, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	return ln, unlock, nil
}

// Serve accepts connections until ctx ends or the listener fails. Each
// connection from this user is one session.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	go func() {
		select {
		case <-ctx.Done():
		case <-s.ctx.Done():
		}
		ln.Close()
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || s.ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("accept: %w", err)
		}
		if err := checkPeer(c); err != nil {
			s.log.Warn("refused connection", zap.Error(err))
			c.Close()
			continue
		}
		s.ServeConn(c)
	}
}

// checkPeer refuses a connection from another user (SO_PEERCRED).
func checkPeer(c net.Conn) error {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if cerr != nil {
		return fmt.Errorf("peer credentials: %w", cerr)
	}
	if int(cred.Uid) != os.Getuid() {
		return fmt.Errorf("connection from uid %d (pid %d) refused: the daemon serves uid %d only", cred.Uid, cred.Pid, os.Getuid())
	}
	return nil
}

// ServeConn runs one session on rwc (a socket, a pipe or stdio) in the
// background.
func (s *Server) ServeConn(rwc interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
}) *Session {
	s.mu.Lock()
	s.nextID++
	sess := newSession(s, s.nextID, rwc)
	s.sessions[sess] = struct{}{}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		sess.run()
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
	}()
	return sess
}

// RunDaemon is `bgagents daemon`: it listens, re-adopts agents and serves
// until ctx ends or a client asks it to stop.
func RunDaemon(ctx context.Context, opts Options) error {
	ln, unlock, err := Listen(opts.Paths)
	if err != nil {
		return err
	}
	defer unlock()
	s := New(opts)
	s.Start()
	s.log.Info("daemon listening", zap.String("socket", opts.Paths.Socket()), zap.Int("pid", os.Getpid()))
	err = s.Serve(ctx, ln)
	cerr := s.Close()
	s.log.Info("daemon stopped")
	if err != nil {
		return err
	}
	return cerr
}
