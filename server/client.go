package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"go.lsp.dev/jsonrpc2"
)

// MaxReply is the largest message a client accepts from the daemon.
const MaxReply = 1 << 30

// Client is a connection to the daemon, as the CLI uses it.
type Client struct {
	conn jsonrpc2.Conn
	// notes receives the daemon's notifications.
	notes chan Note
}

// Note is a notification from the daemon.
type Note struct {
	Method string
	Params json.RawMessage
}

// NewClient speaks JSON-RPC over rwc. Notifications are queued (up to
// 4096) and read with Notes.
func NewClient(ctx context.Context, rwc io.ReadWriteCloser) *Client {
	// The daemon is trusted: its replies (a large diff) may exceed the cap
	// the daemon puts on requests.
	c := &Client{conn: jsonrpc2.NewConn(NewStream(rwc, MaxReply)), notes: make(chan Note, 4096)}
	c.conn.Go(ctx, func(ctx context.Context, reply jsonrpc2.Replier, req jsonrpc2.Request) error {
		if _, ok := req.(*jsonrpc2.Call); ok {
			return reply(ctx, nil, jsonrpc2.Errorf(jsonrpc2.MethodNotFound, "the bgagents CLI answers no requests"))
		}
		select {
		case c.notes <- Note{Method: req.Method(), Params: append(json.RawMessage(nil), req.Params()...)}:
		default: // a reader that does not read loses notifications, not the connection
		}
		return nil
	})
	return c
}

// ErrDisconnected is returned by Call when the connection to the daemon
// ends before the reply arrives (the daemon stopped or was killed).
var ErrDisconnected = errors.New("the connection to the bgagents daemon was lost")

// Call makes a request and decodes its result into result. It returns
// ErrDisconnected, rather than waiting forever, when the connection ends.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.conn.Done():
			cancel()
		case <-cctx.Done():
		}
	}()
	_, err := c.conn.Call(cctx, method, params, result)
	if err != nil && ctx.Err() == nil && cctx.Err() != nil {
		return fmt.Errorf("%s: %w", method, ErrDisconnected)
	}
	return err
}

// Notes returns the channel of notifications.
func (c *Client) Notes() <-chan Note { return c.notes }

// Done is closed when the connection ends.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Dial connects to the daemon at p, starting it (detached, under a lock so
// concurrent starters don't race) when nothing answers. daemonCmd is the
// command that runs the daemon in the foreground (`bgagents daemon`).
func Dial(ctx context.Context, p Paths, daemonCmd []string) (net.Conn, error) {
	if c, err := dialSocket(p.Socket()); err == nil {
		return c, nil
	}
	if err := p.ensureRun(); err != nil {
		return nil, err
	}
	lock := flock.New(p.StartLock())
	locked, err := lock.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !locked {
		return nil, fmt.Errorf("start daemon: take %s: %w", p.StartLock(), errOr(err, ctx.Err()))
	}
	defer lock.Unlock() //nolint:errcheck // released on exit anyway
	// Someone else may have started it while we waited for the lock.
	if c, err := dialSocket(p.Socket()); err == nil {
		return c, nil
	}
	if len(daemonCmd) == 0 {
		return nil, fmt.Errorf("no bgagents daemon answers on %s; start one with `bgagents daemon`", p.Socket())
	}
	// A daemon that is stopping still holds its lock for a moment, and a
	// new one started meanwhile exits with "already running": start again
	// until one answers or the deadline passes.
	deadline := time.Now().Add(15 * time.Second)
	var exited <-chan struct{}
	delay := 5 * time.Millisecond
	for {
		if exited == nil {
			ch, err := startDetached(p, daemonCmd)
			if err != nil {
				return nil, err
			}
			exited = ch
		}
		c, err := dialSocket(p.Socket())
		if err == nil {
			return c, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("started the daemon but it does not answer on %s: %w; the log says: %s", p.Socket(), err, lastLogLine(p.Log()))
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("start daemon: %w", ctx.Err())
		case <-exited:
			exited = nil // it ended at once; try again after the delay
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("start daemon: %w", ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		case <-time.After(delay):
		}
		if delay < 200*time.Millisecond {
			delay *= 2
		}
	}
}

func errOr(err, alt error) error {
	if err != nil {
		return err
	}
	if alt != nil {
		return alt
	}
	return errors.New("lock not taken")
}

func dialSocket(sock string) (net.Conn, error) {
	return net.DialTimeout("unix", sock, 2*time.Second)
}

// startDetached starts the daemon in its own session, its output going to
// its log file, so it outlives the terminal or editor that started it.
func startDetached(p Paths, daemonCmd []string) (<-chan struct{}, error) {
	if err := os.MkdirAll(p.State, 0o700); err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	logf, err := os.OpenFile(p.Log(), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("start daemon: %w", err)
	}
	defer logf.Close()
	cmd := exec.Command(daemonCmd[0], daemonCmd[1:]...)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start daemon %s: %w", daemonCmd[0], err)
	}
	// Reap it if it exits while we are still here (e.g. another daemon won).
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	return exited, nil
}

// lastLogLine returns the last line of the daemon's log, for errors.
func lastLogLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "see " + path
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	return lines[len(lines)-1] + " (" + path + ")"
}

// Forward relays an LSP stream between an editor (in, out) and the daemon
// connection c until either side closes.
func Forward(ctx context.Context, in io.Reader, out io.Writer, c net.Conn) error {
	inDone := make(chan error, 1)
	outDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(c, in)
		inDone <- err
	}()
	go func() {
		_, err := io.Copy(out, c)
		outDone <- err
	}()
	defer c.Close()
	select {
	case err := <-outDone:
		// The daemon closed the session (after exit, or it stopped).
		return err
	case <-ctx.Done():
		return ctx.Err()
	case err := <-inDone:
		// The editor closed its side. Replies still in flight (to a
		// shutdown/exit sequence piped in) get a moment to arrive.
		select {
		case <-outDone:
		case <-ctx.Done():
		case <-time.After(2 * time.Second):
		}
		return err
	}
}
