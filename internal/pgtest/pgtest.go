// Package pgtest runs a private PostgreSQL cluster for a test: initdb into
// the test's temporary directory, a server on a Unix socket and a free
// 127.0.0.1 port with trust authentication, stopped and removed when the
// test ends.
//
// The server binaries come from Debian's postgresql package
// (/usr/lib/postgresql/VERSION/bin, the newest version found), from
// $BGAGENTS_PG_BINDIR, or from PATH. Without them Start skips the test,
// naming .ci/install-postgres, or fails it when $BGAGENTS_REQUIRE_POSTGRES
// is set (for CI, where a skip would hide the missing install).
//
// PostgreSQL refuses to run as root: when the test runs as root, the
// cluster is made and run as the "postgres" system user (created if
// missing), through the process credentials rather than su or sudo.
package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Superuser is the cluster's superuser role; authentication is "trust".
const Superuser = "postgres"

// startTimeout bounds how long Start waits for the server to accept
// connections.
const startTimeout = 60 * time.Second

// Server is a running private cluster.
type Server struct {
	BinDir    string // directory holding initdb, pg_ctl and postgres
	Version   string // e.g. "15.18", as initdb --version reports it
	DataDir   string
	SocketDir string // Unix socket directory (the "host" for socket connections)
	Port      int    // TCP port on 127.0.0.1, also the socket's number
	LogFile   string

	cred *syscall.Credential // when running as root: the postgres user
}

// URL returns a postgres:// URL for database db over TCP.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", Superuser, s.Port, db)
}

// DSN returns a keyword/value connection string for database db over the
// Unix socket.
func (s *Server) DSN(db string) string {
	return fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", s.SocketDir, s.Port, Superuser, db)
}

// Connect opens a connection to database db, closed when the test ends.
func (s *Server) Connect(t testing.TB, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// Exec runs sql in database db on a connection of its own.
func (s *Server) Exec(t testing.TB, db, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("pgtest: connect to %s: %v", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// Start makes and starts a private cluster for t, and stops it (pg_ctl
// stop -m immediate) and removes it when t ends.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := FindBinDir()
	if err != nil {
		if os.Getenv("BGAGENTS_REQUIRE_POSTGRES") != "" {
			t.Fatalf("pgtest: %v (BGAGENTS_REQUIRE_POSTGRES is set)", err)
		}
		t.Skipf("pgtest: %v", err)
	}
	s := &Server{BinDir: bin}
	if os.Geteuid() == 0 {
		if s.cred, err = postgresUser(); err != nil {
			t.Fatalf("pgtest: running as root, and %v", err)
		}
	}
	if out, err := exec.Command(filepath.Join(bin, "initdb"), "--version").Output(); err == nil {
		if f := strings.Fields(string(out)); len(f) > 0 {
			s.Version = f[len(f)-1]
		}
	}

	base := t.TempDir()
	sock, err := os.MkdirTemp("", "pgtest-") // short: socket paths are limited to 107 bytes
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(sock) })
	s.DataDir = filepath.Join(base, "data")
	s.SocketDir = sock
	s.LogFile = filepath.Join(base, "postgres.log")
	if s.cred != nil {
		// The postgres user must reach base: open the test's own
		// directories for traversal and hand base and the socket
		// directory over.
		for _, d := range []string{filepath.Dir(base), base, sock} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
		for _, d := range []string{base, sock} {
			if err := os.Chown(d, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				t.Fatalf("pgtest: %v", err)
			}
		}
	}

	if out, err := s.run("initdb", "-D", s.DataDir, "-A", "trust", "-U", Superuser,
		"-E", "UTF8", "--locale=C", "--no-sync"); err != nil {
		t.Fatalf("pgtest: initdb: %v\n%s", err, out)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		if s.Port, err = freePort(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		if err := s.writeConfig(); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		out, err := s.run("pg_ctl", "-D", s.DataDir, "-l", s.LogFile, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "start")
		if err == nil {
			lastErr = nil
			break
		}
		lastErr = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, s.logTail())
		// Another process may have taken the port between freePort and
		// the server's bind: try another one.
		if !strings.Contains(s.logTail(), "could not bind") && !strings.Contains(s.logTail(), "in use") {
			break
		}
	}
	t.Cleanup(func() {
		if out, err := s.run("pg_ctl", "-D", s.DataDir, "-m", "immediate", "-w", "stop"); err != nil {
			t.Logf("pgtest: pg_ctl stop: %v\n%s", err, out)
		}
	})
	if lastErr != nil {
		t.Fatalf("pgtest: %v", lastErr)
	}
	if err := s.waitReady(startTimeout); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, s.logTail())
	}
	return s
}

// FindBinDir returns the directory of the PostgreSQL server binaries, or
// an error that names .ci/install-postgres.
func FindBinDir() (string, error) {
	if d := os.Getenv("BGAGENTS_PG_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("BGAGENTS_PG_BINDIR=%s has no initdb; install the server with: sudo bash .ci/install-postgres", d)
		}
		return d, nil
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	version := func(p string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(filepath.Dir(p))), 64)
		return v
	}
	slices.SortFunc(matches, func(a, b string) int {
		switch va, vb := version(a), version(b); {
		case va > vb:
			return -1
		case va < vb:
			return 1
		}
		return 0
	})
	for _, m := range matches {
		d := filepath.Dir(m)
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		return filepath.Dir(p), nil
	}
	return "", errors.New("PostgreSQL server binaries not found (no initdb under /usr/lib/postgresql/*/bin or in PATH); " +
		"install them with: sudo bash .ci/install-postgres")
}

// postgresUser returns credentials of the "postgres" system user, creating
// the user when it does not exist.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		var unknown user.UnknownUserError
		if !errors.As(err, &unknown) {
			return nil, fmt.Errorf("look up user postgres: %w", err)
		}
		out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
			"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", "postgres").CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("the postgres user does not exist and useradd failed: %v: %s", err, bytes.TrimSpace(out))
		}
		if u, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("look up user postgres: %w", err)
		}
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("user postgres has ids %s:%s", u.Uid, u.Gid)
	}
	if uid == 0 {
		return nil, errors.New("user postgres is root")
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// run runs a PostgreSQL binary (as the postgres user when root) and
// returns its combined output.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(s.BinDir, name), args...)
	cmd.Dir = os.TempDir()
	cmd.Env = serverEnv()
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd.CombinedOutput()
}

// serverEnv is the environment for the server binaries: the test's, less
// libpq's PG* variables, in the C locale.
func serverEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || k == "LANG" || k == "LANGUAGE" || strings.HasPrefix(k, "LC_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "LC_ALL=C")
}

// writeConfig writes the settings of this run into postgresql.auto.conf,
// which the server reads after postgresql.conf.
func (s *Server) writeConfig() error {
	conf := fmt.Sprintf(`# written by pgtest
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = '%s'
max_connections = 50
shared_buffers = 16MB
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
`, s.Port, strings.ReplaceAll(s.SocketDir, "'", "''"))
	p := filepath.Join(s.DataDir, "postgresql.auto.conf")
	if err := os.WriteFile(p, []byte(conf), 0o600); err != nil {
		return err
	}
	if s.cred != nil {
		return os.Chown(p, int(s.cred.Uid), int(s.cred.Gid))
	}
	return nil
}

// waitReady connects until the server answers a query or timeout passes.
func (s *Server) waitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, s.URL("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(context.Background())
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server on port %d did not accept connections within %v: %v", s.Port, timeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the end of the server's log.
func (s *Server) logTail() string {
	b, _ := os.ReadFile(s.LogFile)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Stop stops the server (fast shutdown), as when the developer's database
// server goes down; Resume starts it again on the same port.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.DataDir, "-m", "fast", "-w", "stop"); err != nil {
		t.Fatalf("pgtest: pg_ctl stop: %v\n%s", err, out)
	}
}

// Resume starts a server stopped by Stop.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if out, err := s.run("pg_ctl", "-D", s.DataDir, "-l", s.LogFile, "-w", "-t", strconv.Itoa(int(startTimeout/time.Second)), "start"); err != nil {
		t.Fatalf("pgtest: pg_ctl start: %v\n%s\n%s", err, out, s.logTail())
	}
	if err := s.waitReady(startTimeout); err != nil {
		t.Fatalf("pgtest: %v\n%s", err, s.logTail())
	}
}

// Freeze stops the server's postmaster with SIGSTOP, as a hung database
// server: new connections are accepted by the kernel and then never
// answered. The returned function (also run at cleanup) lets it go on.
func (s *Server) Freeze(t testing.TB) (thaw func()) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(s.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(data), "\n", 2)[0]))
	if err != nil {
		t.Fatalf("pgtest: postmaster.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("pgtest: stop the postmaster: %v", err)
	}
	done := false
	thaw = func() {
		if !done {
			done = true
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(thaw)
	return thaw
}
