package pgtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestStart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Over TCP.
	conn := s.Connect(t, "postgres")
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1 over TCP = %d, %v", one, err)
	}
	// Over the Unix socket, with the keyword/value DSN.
	sc, err := pgx.Connect(ctx, s.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect over the socket: %v", err)
	}
	defer sc.Close(ctx)
	var user string
	if err := sc.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != Superuser {
		t.Fatalf("current_user = %q, %v", user, err)
	}
	s.Exec(t, "postgres", "CREATE DATABASE pgtest_probe")
	if _, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); err != nil {
		t.Fatalf("data directory: %v", err)
	}
	if s.Version == "" {
		t.Error("Version is empty")
	}
}

// TestTwoServers checks that two clusters run side by side on their own
// ports and directories.
func TestTwoServers(t *testing.T) {
	a, b := Start(t), Start(t)
	if a.Port == b.Port || a.DataDir == b.DataDir || a.SocketDir == b.SocketDir {
		t.Fatalf("clusters share a port or a directory: %+v %+v", a, b)
	}
	a.Exec(t, "postgres", "CREATE DATABASE only_in_a")
	ctx := context.Background()
	var n int
	if err := b.Connect(t, "postgres").QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'only_in_a'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("database made in a is seen in b: %d, %v", n, err)
	}
}

// TestStopped checks that the cluster is stopped and removed when its test
// ends.
func TestStopped(t *testing.T) {
	var s *Server
	t.Run("inner", func(t *testing.T) { s = Start(t) })
	if s == nil {
		t.Skip("no server started")
	}
	if _, err := os.Stat(s.DataDir); !os.IsNotExist(err) {
		t.Errorf("data directory still there: %v", err)
	}
	if _, err := os.Stat(s.SocketDir); !os.IsNotExist(err) {
		t.Errorf("socket directory still there: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, s.URL("postgres")); err == nil {
		conn.Close(ctx)
		t.Error("server still accepts connections after its test ended")
	}
}
