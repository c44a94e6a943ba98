package provision

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/bgagents/bgagents/internal/pgtest"
)

func TestWithDatabase(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"postgres://u:p%40ss@db.example:5433/app_dev?sslmode=disable&application_name=x",
			"postgres://u:p%40ss@db.example:5433/app_dev_a1?sslmode=disable&application_name=x"},
		{"postgresql://localhost/app_dev", "postgresql://localhost/app_dev_a1"},
		{"postgres://localhost", "postgres://localhost/app_dev_a1"},
		{"postgres://localhost/", "postgres://localhost/app_dev_a1"},
		{"postgres://localhost?dbname=app_dev&connect_timeout=5", "postgres://localhost/app_dev_a1?dbname=app_dev_a1&connect_timeout=5"},
		{"postgres://h1:5432,h2:5433/app_dev?target_session_attrs=read-write", "postgres://h1:5432,h2:5433/app_dev_a1?target_session_attrs=read-write"},
		{"postgres://[::1]:5432/app_dev", "postgres://[::1]:5432/app_dev_a1"},
		{"postgres:///app_dev?host=/var/run/postgresql", "postgres:///app_dev_a1?host=/var/run/postgresql"},
		{"host=localhost port=5432 dbname=app_dev user=me", "host=localhost port=5432 dbname=app_dev_a1 user=me"},
		{`host=localhost dbname = 'app dev' password='it\'s'`, `host=localhost dbname = app_dev_a1 password='it\'s'`},
		{"database=app_dev host=localhost", "database=app_dev_a1 host=localhost"},
		{"host=localhost password=a\\ b", "host=localhost password=a\\ b dbname=app_dev_a1"},
		{"", "dbname=app_dev_a1"},
	} {
		got, err := withDatabase(tc.in, "app_dev_a1")
		if err != nil || got != tc.want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			continue
		}
		// pgx reads the same settings, with the new database.
		before, err1 := pgx.ParseConfig(tc.in)
		after, err2 := pgx.ParseConfig(got)
		if err1 != nil || err2 != nil {
			continue // not every case is a whole connection string
		}
		if after.Database != "app_dev_a1" || after.Host != before.Host || after.Port != before.Port ||
			after.User != before.User || after.Password != before.Password {
			t.Errorf("%q: pgx reads %+v; want the settings of %q with database app_dev_a1", got, after.Config, tc.in)
		}
	}
	if got, err := AgentURL("postgres://h/app_dev", "app_dev_a1"); err != nil || got != "postgres://h/app_dev_a1" {
		t.Errorf("AgentURL = %q, %v", got, err)
	}
	if _, err := AgentURL("postgres://h/app_dev", "Bad-Name"); err == nil {
		t.Error("AgentURL accepted a bad name")
	}
	if _, err := withDatabase("host='unterminated", "x"); err == nil {
		t.Error("unterminated quote accepted")
	}
}

func TestCheckDatabaseName(t *testing.T) {
	for _, ok := range []string{"app_dev_agent_1", "a", strings.Repeat("a", 63)} {
		if err := checkDatabaseName(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "App", "app-dev", `a"b`, "a b", "é", strings.Repeat("a", 64)} {
		if err := checkDatabaseName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestPostgres runs CopyPostgres and DropPostgres against a private
// PostgreSQL server.
func TestPostgres(t *testing.T) {
	t.Parallel() // the busy-template case waits 5 s for PostgreSQL to give up
	srv := pgtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	srv.Exec(t, "postgres", "CREATE DATABASE app_dev")
	srv.Exec(t, "app_dev", "CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL)")
	srv.Exec(t, "app_dev", "INSERT INTO users VALUES (1, 'ada'), (2, 'grace')")
	tmplURL := srv.URL("app_dev")

	count := func(t *testing.T, url string) int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	exists := func(t *testing.T, name string) bool {
		t.Helper()
		var n int
		if err := srv.Connect(t, "postgres").QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 1
	}

	t.Run("copy", func(t *testing.T) {
		agentURL, err := CopyPostgres(ctx, tmplURL, "app_dev_agent1")
		if err != nil {
			t.Fatal(err)
		}
		if want := srv.URL("app_dev_agent1"); agentURL != want {
			t.Errorf("agent url %q; want %q", agentURL, want)
		}
		// The seeded table is in the copy.
		conn, err := pgx.Connect(ctx, agentURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var names []string
		rows, _ := conn.Query(ctx, "SELECT name FROM users ORDER BY id")
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil || strings.Join(names, ",") != "ada,grace" {
			t.Fatalf("users in the copy: %q, %v", names, err)
		}
		// A write in the copy is not in the original, and the other way round.
		if _, err := conn.Exec(ctx, "INSERT INTO users VALUES (3, 'agent')"); err != nil {
			t.Fatal(err)
		}
		if n := count(t, tmplURL); n != 2 {
			t.Errorf("original has %d users after a write in the copy; want 2", n)
		}
		srv.Exec(t, "app_dev", "INSERT INTO users VALUES (10, 'dev')")
		if n := count(t, agentURL); n != 3 {
			t.Errorf("copy has %d users after a write in the original; want 3", n)
		}
		srv.Exec(t, "app_dev", "DELETE FROM users WHERE id = 10")

		// The same name again.
		if _, err := CopyPostgres(ctx, tmplURL, "app_dev_agent1"); !errors.Is(err, ErrDatabaseExists) || strings.Contains(err.Error(), "drop it") {
			t.Errorf("second copy: %v; want ErrDatabaseExists, without telling to drop someone's database", err)
		}

		// Drop while the agent is still connected, then again.
		if err := DropPostgres(ctx, agentURL); err != nil {
			t.Fatal(err)
		}
		if exists(t, "app_dev_agent1") {
			t.Error("the copy is still there after DropPostgres")
		}
		if err := DropPostgres(ctx, agentURL); err != nil {
			t.Errorf("second drop: %v", err)
		}
	})

	t.Run("keyword dsn over the socket", func(t *testing.T) {
		agentDSN, err := CopyPostgres(ctx, srv.DSN("app_dev"), "app_dev_agent2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(agentDSN, "dbname=app_dev_agent2") || !strings.Contains(agentDSN, "host="+srv.SocketDir) {
			t.Errorf("agent dsn %q", agentDSN)
		}
		if n := count(t, agentDSN); n != 2 {
			t.Errorf("copy has %d users; want 2", n)
		}
		if err := DropPostgres(ctx, agentDSN); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("template busy", func(t *testing.T) {
		// The developer's dev server holds a connection to the template.
		dev, err := pgx.Connect(ctx, tmplURL+"&application_name=devserver")
		if err != nil {
			t.Fatal(err)
		}
		defer dev.Close(ctx)
		_, err = CopyPostgres(ctx, tmplURL, "app_dev_agent3")
		var busy *TemplateBusyError
		if !errors.As(err, &busy) {
			t.Fatalf("err = %v; want *TemplateBusyError", err)
		}
		if busy.Template != "app_dev" || busy.Connections != 1 {
			t.Errorf("busy = %+v; want app_dev with 1 connection", busy)
		}
		msg := err.Error()
		for _, want := range []string{
			"copy database app_dev", "1 other session is connected to it (devserver)",
			"close other connections to app_dev (your dev server, psql, an IDE) or set [database] url to a template database nobody connects to",
		} {
			if !strings.Contains(msg, want) {
				t.Errorf("error lacks %q:\n%s", want, msg)
			}
		}
		if exists(t, "app_dev_agent3") {
			t.Error("a database was left behind by the failed copy")
		}
	})

	t.Run("errors", func(t *testing.T) {
		for _, tc := range []struct{ url, name, want string }{
			{srv.URL("no_such_db"), "no_such_db_a", "copy database no_such_db: it does not exist"},
			{tmplURL, "App-Dev", "only lower-case letters, digits and _"},
			{tmplURL, strings.Repeat("x", 64), "at most 63"},
			{tmplURL, "app_dev", "the template's own name"},
			{srv.URL(""), "x", "names no database"},
			{"postgres://postgres@127.0.0.1:1/app_dev?connect_timeout=2", "app_dev_x", "connect to postgres"},
		} {
			_, err := CopyPostgres(ctx, tc.url, tc.name)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("CopyPostgres(%q, %q) = %v; want error containing %q", tc.url, tc.name, err, tc.want)
			}
		}
		for _, db := range []string{"postgres", "template1", ""} {
			if err := DropPostgres(ctx, srv.URL(db)); err == nil {
				t.Errorf("DropPostgres(%q) accepted", db)
			}
		}
		// The template, or any database CopyPostgres did not make.
		if err := DropPostgres(ctx, tmplURL); err == nil || !strings.Contains(err.Error(), "refusing to drop a database bgagents did not make") {
			t.Errorf("DropPostgres(template) = %v", err)
		}
		// A database that is not there (dropped already).
		if err := DropPostgres(ctx, srv.URL("app_dev_never_made")); err != nil {
			t.Errorf("DropPostgres of a missing database: %v", err)
		}
		if !exists(t, "app_dev") {
			t.Fatal("the template is gone")
		}
	})
}

func TestCopySQLite(t *testing.T) {
	dir := realTempDir(t)
	src := filepath.Join(dir, "db", "dev.sqlite3")
	mustf(t, os.MkdirAll(filepath.Dir(src), 0o755), "mkdir")
	db, err := sql.Open("sqlite", src)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		"PRAGMA journal_mode = WAL",
		"PRAGMA wal_autocheckpoint = 0", // keep the rows in the -wal file
		"CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
		"INSERT INTO users (name) VALUES ('ada'), ('grace')",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if fi, err := os.Stat(src + "-wal"); err != nil || fi.Size() == 0 {
		t.Fatalf("no -wal file beside the database: %v", err)
	}

	dst := filepath.Join(dir, "wt", "db", "dev.sqlite3")
	writeFile(t, dst+"-journal", "stale journal", 0o644) // must not be replayed into the copy
	if err := CopySQLite(src, dst); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dst + "-journal"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale -journal kept: %v", err)
	}
	cp, err := sql.Open("sqlite", dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var n int
	if err := cp.QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil || n != 2 {
		t.Fatalf("copy has %d users, %v; want 2 (rows still in the -wal)", n, err)
	}
	if _, err := cp.Exec("INSERT INTO users (name) VALUES ('agent')"); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT count(*) FROM users").Scan(&n); err != nil || n != 2 {
		t.Errorf("original has %d users after a write in the copy, %v; want 2", n, err)
	}
	cp.Close()

	if err := RemoveSQLite(dst); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", "-wal", "-shm", "-journal"} {
		if _, err := os.Stat(dst + s); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after RemoveSQLite: %v", dst+s, err)
		}
	}
	if err := RemoveSQLite(dst); err != nil {
		t.Errorf("second RemoveSQLite: %v", err)
	}
	if err := CopySQLite(filepath.Join(dir, "missing.sqlite3"), dst); err == nil || !strings.Contains(err.Error(), "does not exist; check [database] path") {
		t.Errorf("missing source: %v", err)
	}
	if err := CopySQLite(src, src); err == nil || !strings.Contains(err.Error(), "same file") {
		t.Errorf("copy onto itself: %v", err)
	}
}
