package provision

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// PostgreSQL error codes (SQLSTATE) that CopyPostgres and DropPostgres
// turn into their own errors.
const (
	sqlstateObjectInUse           = "55006"
	sqlstateDuplicateDatabase     = "42P04"
	sqlstateInvalidCatalogName    = "3D000"
	sqlstateInsufficientPrivilege = "42501"
)

// maxIdentifierLen is PostgreSQL's NAMEDATALEN-1: longer names are
// truncated silently by the server, so they are refused here instead.
const maxIdentifierLen = 63

// ErrDatabaseExists is wrapped by CopyPostgres when the agent's database
// already exists.
var ErrDatabaseExists = errors.New("database already exists")

// TemplateBusyError is returned by CopyPostgres when PostgreSQL refuses to
// copy the template database because other sessions are connected to it
// (SQLSTATE 55006): CREATE DATABASE ... TEMPLATE needs a template nobody is
// connected to.
type TemplateBusyError struct {
	Template     string   // the template database
	Connections  int      // other sessions on it just after the refusal; -1 when unknown
	Applications []string // their application_name, where the server shows it
}

// Error names the database, how many connections it has and the remedy.
func (e *TemplateBusyError) Error() string {
	var who string
	switch {
	case e.Connections < 0:
		who = "other sessions are connected to it"
	case e.Connections == 0:
		who = "other sessions were connected to it"
	case e.Connections == 1:
		who = "1 other session is connected to it"
	default:
		who = fmt.Sprintf("%d other sessions are connected to it", e.Connections)
	}
	if len(e.Applications) > 0 {
		who += " (" + strings.Join(e.Applications, ", ") + ")"
	}
	return fmt.Sprintf("copy database %s: PostgreSQL copies a template only while nobody else is connected to it, and %s; "+
		"close other connections to %s (your dev server, psql, an IDE) or set [database] url to a template database nobody connects to",
		e.Template, who, e.Template)
}

// CopyPostgres creates the database name on the server of templateURL as a
// copy of templateURL's database (CREATE DATABASE "name" TEMPLATE "tmpl")
// and returns templateURL rewritten to name, with user, password, host,
// port and parameters unchanged.
//
// templateURL is a postgres:// or postgresql:// URL or a keyword/value
// DSN ("host=localhost dbname=app_dev"); PG* environment variables fill in
// what it leaves out, as in libpq. The statement is run from the server's
// maintenance database "postgres" (template1 when that cannot be used),
// never from the template itself. name must be lower-case [a-z0-9_], at
// most 63 bytes.
//
// PostgreSQL refuses to copy a template that has other sessions: the error
// is then a *TemplateBusyError. An existing database name gives an error
// wrapping ErrDatabaseExists. The copy holds the tables and data of the
// template at the moment of the copy; it costs about as much disk as the
// template.
func CopyPostgres(ctx context.Context, templateURL, name string) (agentURL string, err error) {
	if err := checkDatabaseName(name); err != nil {
		return "", err
	}
	cfg, err := pgx.ParseConfig(templateURL)
	if err != nil {
		return "", fmt.Errorf("copy database: parse template url: %w", err)
	}
	tmpl := cfg.Database
	if tmpl == "" {
		return "", errors.New("copy database: the template url names no database")
	}
	if tmpl == name {
		return "", fmt.Errorf("copy database %s: the copy would have the template's own name", tmpl)
	}
	agentURL, err = withDatabase(templateURL, name)
	if err != nil {
		return "", fmt.Errorf("copy database %s: %w", tmpl, err)
	}
	conn, err := connectMaintenance(ctx, cfg, tmpl, name)
	if err != nil {
		return "", fmt.Errorf("copy database %s: %w", tmpl, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	sql := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize() + " TEMPLATE " + pgx.Identifier{tmpl}.Sanitize()
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) {
			switch pgErr.Code {
			case sqlstateObjectInUse:
				return "", templateBusy(ctx, conn, tmpl)
			case sqlstateDuplicateDatabase:
				return "", fmt.Errorf("copy database %s to %s on %s: %w; it was not made for this agent, so bgagents leaves it alone (spawn the agent again: a new agent gets a new database name)",
					tmpl, name, serverName(cfg), ErrDatabaseExists)
			case sqlstateInvalidCatalogName:
				return "", fmt.Errorf("copy database %s: it does not exist on %s; check [database] url", tmpl, serverName(cfg))
			case sqlstateInsufficientPrivilege:
				return "", fmt.Errorf("copy database %s: role %q may not create databases on %s (it needs CREATEDB): %w",
					tmpl, cfg.User, serverName(cfg), err)
			}
		}
		return "", fmt.Errorf("copy database %s to %s: %w", tmpl, name, err)
	}
	// Mark the copy as ours: DropPostgres drops nothing else.
	if _, err := conn.Exec(ctx, "COMMENT ON DATABASE "+pgx.Identifier{name}.Sanitize()+" IS '"+strings.ReplaceAll(copyComment, "'", "''")+"'"); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		conn.Exec(dctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
		return "", fmt.Errorf("copy database %s to %s: mark the copy: %w", tmpl, name, err)
	}
	return agentURL, nil
}

// copyComment is the comment CopyPostgres puts on the databases it makes
// (COMMENT ON DATABASE); DropPostgres drops only databases that carry it,
// so a wrong URL cannot cost the developer their own database. Comments on
// databases are not copied by CREATE DATABASE ... TEMPLATE.
const copyComment = "bgagents: a copy of a database for an agent; dropped when the agent is discarded or merged"

// TemplateDatabase returns the database templateURL names, read as pgx
// (and so CopyPostgres) reads it: the path of a postgres:// URL, or its
// dbname (or database) parameter, which wins over the path, as in
// "postgres:///?host=/run/postgresql&dbname=app_dev"; the dbname of a
// keyword/value DSN ("host=/run/postgresql dbname=app_dev"); else
// $PGDATABASE.
func TemplateDatabase(templateURL string) (string, error) {
	cfg, err := pgx.ParseConfig(templateURL)
	if err != nil {
		return "", fmt.Errorf("database url: %w", err)
	}
	if cfg.Database == "" {
		return "", errors.New("database url names no database (e.g. postgres://localhost/app_dev, postgres:///?host=/run/postgresql&dbname=app_dev or host=/run/postgresql dbname=app_dev)")
	}
	return cfg.Database, nil
}

// AgentURL returns the connection string (URL or keyword/value DSN)
// templateURL rewritten to database name, as CopyPostgres returns it. The
// caller can record it before the copy, to find a copy an interrupted run
// may have left.
func AgentURL(templateURL, name string) (string, error) {
	if err := checkDatabaseName(name); err != nil {
		return "", err
	}
	return withDatabase(templateURL, name)
}

// templateBusy builds the error for a template that has other sessions.
func templateBusy(ctx context.Context, conn *pgx.Conn, tmpl string) error {
	e := &TemplateBusyError{Template: tmpl, Connections: -1}
	var apps []string
	err := conn.QueryRow(ctx,
		`SELECT count(*), coalesce(array_agg(DISTINCT application_name) FILTER (WHERE application_name <> ''), '{}')
		   FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
		tmpl).Scan(&e.Connections, &apps)
	if err != nil {
		e.Connections = -1
		return e
	}
	if len(apps) > 5 {
		apps = append(apps[:5], "...")
	}
	e.Applications = apps
	return e
}

// DropPostgres drops the database agentURL names, with WITH (FORCE) on
// PostgreSQL 13 and later (other sessions on it are ended first on older
// servers). A database that does not exist is not an error, so it can be
// called again after a failure. It drops only databases CopyPostgres made
// (they carry its comment) and refuses any other, such as the template.
func DropPostgres(ctx context.Context, agentURL string) error {
	cfg, err := pgx.ParseConfig(agentURL)
	if err != nil {
		return fmt.Errorf("drop database: parse url: %w", err)
	}
	name := cfg.Database
	switch name {
	case "":
		return errors.New("drop database: the url names no database")
	case "postgres", "template0", "template1":
		return fmt.Errorf("drop database %s: refusing to drop a database the server itself uses", name)
	}
	if err := checkDatabaseName(name); err != nil {
		return fmt.Errorf("drop database: %w", err)
	}
	conn, err := connectMaintenance(ctx, cfg, name, "")
	if err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var comment string
	err = conn.QueryRow(ctx, "SELECT coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname = $1", name).Scan(&comment)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // dropped already
	}
	if err != nil {
		return fmt.Errorf("drop database %s on %s: %w", name, serverName(cfg), err)
	}
	if comment != copyComment {
		return fmt.Errorf("drop database %s on %s: refusing to drop a database bgagents did not make (it lacks the comment CopyPostgres puts on its copies)", name, serverName(cfg))
	}

	ident := pgx.Identifier{name}.Sanitize()
	if serverVersion(conn) >= 13 {
		_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
	} else {
		_, err = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
		if err == nil {
			_, err = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+ident)
		}
	}
	if err != nil {
		return fmt.Errorf("drop database %s on %s: %w", name, serverName(cfg), err)
	}
	return nil
}

// checkDatabaseName enforces the names CopyPostgres makes: lower-case
// ASCII letters, digits and underscores, at most 63 bytes.
func checkDatabaseName(name string) error {
	if name == "" {
		return errors.New("database name is empty")
	}
	if len(name) > maxIdentifierLen {
		return fmt.Errorf("database name %q is %d bytes long; PostgreSQL allows at most %d", name, len(name), maxIdentifierLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return fmt.Errorf("database name %q: only lower-case letters, digits and _ are allowed", name)
		}
	}
	return nil
}

// connectMaintenance connects to cfg's server through its maintenance
// database: "postgres", or template1 when the server answers that
// "postgres" cannot be used. avoid names databases not to connect to (the
// template, whose copy needs it free, or the database to drop).
func connectMaintenance(ctx context.Context, cfg *pgx.ConnConfig, avoid ...string) (*pgx.Conn, error) {
	var firstErr error
	for _, db := range []string{"postgres", "template1"} {
		skip := false
		for _, a := range avoid {
			skip = skip || a == db
		}
		if skip {
			continue
		}
		c := cfg.Copy()
		c.Database = db
		if c.RuntimeParams == nil {
			c.RuntimeParams = map[string]string{}
		}
		c.RuntimeParams["application_name"] = "bgagents"
		if c.ConnectTimeout == 0 || c.ConnectTimeout > 10*time.Second {
			c.ConnectTimeout = 10 * time.Second // a server that hangs is not waited for
		}
		conn, err := pgx.ConnectConfig(ctx, c)
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("connect to %s on %s: %w", db, serverName(cfg), err)
		}
		// Fall back only when the server answered (no such database, no
		// CONNECT right); a server that cannot be reached will not do
		// better the second time.
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || ctx.Err() != nil {
			break
		}
	}
	if firstErr == nil {
		firstErr = errors.New("no maintenance database to connect to")
	}
	return nil, firstErr
}

// serverVersion returns the server's major version, or 0 when unknown.
func serverVersion(conn *pgx.Conn) int {
	v := conn.PgConn().ParameterStatus("server_version")
	end := 0
	for end < len(v) && v[end] >= '0' && v[end] <= '9' {
		end++
	}
	n, _ := strconv.Atoi(v[:end])
	return n
}

// serverName describes cfg's server for error messages: "host:port" or the
// socket directory.
func serverName(cfg *pgx.ConnConfig) string {
	if strings.HasPrefix(cfg.Host, "/") {
		return fmt.Sprintf("socket %s (port %d)", cfg.Host, cfg.Port)
	}
	return fmt.Sprintf("%s:%d", cfg.Host, cfg.Port)
}

// withDatabase returns connString with its database replaced by name (a
// name checkDatabaseName accepts, so it needs no quoting or escaping).
// Everything else is kept byte for byte.
func withDatabase(connString, name string) (string, error) {
	for _, scheme := range []string{"postgresql://", "postgres://"} {
		if rest, ok := strings.CutPrefix(connString, scheme); ok {
			return scheme + urlWithDatabase(rest, name), nil
		}
	}
	return dsnWithDatabase(connString, name)
}

// urlWithDatabase rewrites the part of a postgres URL after the scheme. It
// follows libpq's (and pgx's) reading: the user info ends at an '@' before
// the first '/', the hosts at the first '/' or '?', the path at '?', and a
// dbname query parameter overrides the path.
func urlWithDatabase(p, name string) string {
	var userinfo string
	if i := strings.IndexAny(p, "@/"); i >= 0 && p[i] == '@' {
		userinfo, p = p[:i+1], p[i+1:]
	}
	hosts := p
	rest := ""
	if i := strings.IndexAny(p, "/?"); i >= 0 {
		hosts, rest = p[:i], p[i:]
	}
	query := ""
	if i := strings.IndexByte(rest, '?'); i >= 0 {
		query = rest[i+1:]
	}
	out := userinfo + hosts + "/" + name
	if query != "" {
		params := strings.Split(query, "&")
		for i, kv := range params {
			k, _, _ := strings.Cut(kv, "=")
			if dk, err := url.QueryUnescape(k); err == nil && (dk == "dbname" || dk == "database") {
				params[i] = k + "=" + name
			}
		}
		out += "?" + strings.Join(params, "&")
	}
	return out
}

// dsnWithDatabase rewrites a keyword/value DSN: every dbname (or database)
// value is replaced, and dbname=name is appended when there is none.
func dsnWithDatabase(dsn, name string) (string, error) {
	const space = " \t\n\r\v\f"
	var b strings.Builder
	found := false
	s := dsn
	for {
		trimmed := strings.TrimLeft(s, space)
		b.WriteString(s[:len(s)-len(trimmed)])
		s = trimmed
		if s == "" {
			break
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			return "", errors.New("invalid keyword/value connection string")
		}
		key := strings.Trim(s[:eq], space)
		b.WriteString(s[:eq+1])
		s = s[eq+1:]
		trimmed = strings.TrimLeft(s, space)
		b.WriteString(s[:len(s)-len(trimmed)])
		s = trimmed
		// Find the end of the value, as libpq does: up to unescaped white
		// space, or a quoted string.
		end := 0
		if s != "" && s[0] == '\'' {
			end = 1
			for ; end < len(s) && s[end] != '\''; end++ {
				if s[end] == '\\' {
					end++
				}
			}
			if end >= len(s) {
				return "", errors.New("unterminated quoted string in connection string")
			}
			end++
		} else {
			for ; end < len(s) && !strings.ContainsRune(space, rune(s[end])); end++ {
				if s[end] == '\\' {
					end++
				}
			}
			end = min(end, len(s))
		}
		if key == "dbname" || key == "database" {
			b.WriteString(name)
			found = true
		} else {
			b.WriteString(s[:end])
		}
		s = s[end:]
	}
	out := b.String()
	if !found {
		if strings.TrimSpace(out) != "" {
			out += " "
		}
		out += "dbname=" + name
	}
	return out, nil
}

// sqliteCompanions are the files SQLite keeps beside a database: the
// write-ahead log and its index (WAL mode) and the rollback journal.
var sqliteCompanions = []string{"-wal", "-shm", "-journal"}

// CopySQLite copies the SQLite database file src to dst (creating dst's
// directory), together with its -wal, -shm and -journal companions where
// they exist; stale companions at dst are removed so they cannot be
// replayed into the copy. Files are cloned (reflink) where the filesystem
// can, else copied.
//
// Caveat: this is a file copy, consistent only while no process writes to
// the database (a dev server that merely holds it open is fine). A copy
// taken during a write may be torn; stop the writer first, or make the
// copy with SQLite itself (VACUUM INTO). On failure nothing is left at dst.
func CopySQLite(src, dst string) error {
	fi, err := os.Stat(src)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("copy sqlite database: %s does not exist; check [database] path", src)
		}
		return fmt.Errorf("copy sqlite database: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("copy sqlite database: %s is not a regular file", src)
	}
	if di, err := os.Stat(dst); err == nil && os.SameFile(fi, di) {
		return fmt.Errorf("copy sqlite database: %s and %s are the same file", src, dst)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy sqlite database: %w", err)
	}
	var c copier
	for _, suffix := range append([]string{""}, sqliteCompanions...) {
		s, d := src+suffix, dst+suffix
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			RemoveSQLite(dst)
			return fmt.Errorf("copy sqlite database: %w", err)
		}
		sfi, err := os.Lstat(s)
		if errors.Is(err, os.ErrNotExist) && suffix != "" {
			continue
		}
		if err == nil && !sfi.Mode().IsRegular() {
			err = fmt.Errorf("%s is not a regular file", s)
		}
		if err == nil {
			err = c.copyFile(s, d)
		}
		if err != nil {
			RemoveSQLite(dst)
			return fmt.Errorf("copy sqlite database %s: %w", src, err)
		}
	}
	return nil
}

// RemoveSQLite removes the SQLite database file path and its -wal, -shm
// and -journal companions. Files that do not exist are not an error.
func RemoveSQLite(path string) error {
	var first error
	for _, suffix := range append([]string{""}, sqliteCompanions...) {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = fmt.Errorf("remove sqlite database: %w", err)
		}
	}
	return first
}
