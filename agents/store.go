package agents

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // pure-Go SQLite driver, no cgo
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store keeps agent records and their state history in an embedded SQLite
// database (WAL mode: a crash never leaves a half-written record).
type Store struct {
	db *sql.DB
}

// ErrNotFound is returned when no agent matches.
var ErrNotFound = errors.New("agent not found")

// OpenStore opens (creating and migrating as needed) the store at path.
func OpenStore(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(ON)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// One writer at a time is what SQLite allows; a single connection also
	// keeps the pragmas above in force for every statement.
	db.SetMaxOpenConns(1)
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, db, sub, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open store: migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open store %s: migrate: %w", path, err)
	}
	// The records hold tasks and paths: only this user reads them.
	for _, f := range []string{path, path + "-wal", path + "-shm"} {
		_ = os.Chmod(f, 0o600)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// Put inserts or replaces the record a.
func (s *Store) Put(ctx context.Context, a *Agent) error {
	rec, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("store agent %s: %w", a.ID, err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO agents (id, repo, name, state, created_at, updated_at, record)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, record = excluded.record`,
		a.ID, a.Repo, a.Name, string(a.State), ts(a.CreatedAt), ts(a.UpdatedAt), string(rec))
	if err != nil {
		return fmt.Errorf("store agent %s: %w", a.ID, err)
	}
	return nil
}

// PutTransition writes a and the record of its move from one state to
// another in one transaction.
func (s *Store) PutTransition(ctx context.Context, a *Agent, from State, reason string) error {
	rec, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("store agent %s: %w", a.ID, err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store agent %s: %w", a.ID, err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if _, err := tx.ExecContext(ctx, `INSERT INTO agents (id, repo, name, state, created_at, updated_at, record)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, record = excluded.record`,
		a.ID, a.Repo, a.Name, string(a.State), ts(a.CreatedAt), ts(a.UpdatedAt), string(rec)); err != nil {
		return fmt.Errorf("store agent %s: %w", a.ID, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (agent_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?)`,
		a.ID, string(from), string(a.State), reason, ts(a.UpdatedAt)); err != nil {
		return fmt.Errorf("store transition of %s: %w", a.ID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store agent %s: %w", a.ID, err)
	}
	return nil
}

// PutNew stores new agents and their first transitions in one
// transaction: all of them or none.
func (s *Store) PutNew(ctx context.Context, as []*Agent, reason string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store new agents: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	for _, a := range as {
		rec, err := json.Marshal(a)
		if err != nil {
			return fmt.Errorf("store agent %s: %w", a.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO agents (id, repo, name, state, created_at, updated_at, record) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			a.ID, a.Repo, a.Name, string(a.State), ts(a.CreatedAt), ts(a.UpdatedAt), string(rec)); err != nil {
			return fmt.Errorf("store agent %s: %w", a.ID, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO transitions (agent_id, from_state, to_state, reason, at) VALUES (?, ?, ?, ?, ?)`,
			a.ID, "", string(a.State), reason, ts(a.UpdatedAt)); err != nil {
			return fmt.Errorf("store transition of %s: %w", a.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store new agents: %w", err)
	}
	return nil
}

// Get returns the agent with exactly this id.
func (s *Store) Get(ctx context.Context, id string) (*Agent, error) {
	row := s.db.QueryRowContext(ctx, `SELECT record FROM agents WHERE id = ?`, id)
	return scanOne(row, id)
}

func scanOne(row *sql.Row, what string) (*Agent, error) {
	var rec string
	if err := row.Scan(&rec); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("%w: %s", ErrNotFound, what)
		}
		return nil, fmt.Errorf("load agent %s: %w", what, err)
	}
	var a Agent
	if err := json.Unmarshal([]byte(rec), &a); err != nil {
		return nil, fmt.Errorf("load agent %s: corrupt record: %w", what, err)
	}
	return &a, nil
}

// List returns agents, newest first; repo "" means every repository, no
// states means every state.
func (s *Store) List(ctx context.Context, repo string, states []State) ([]*Agent, error) {
	q := `SELECT record FROM agents WHERE 1=1`
	var args []any
	if repo != "" {
		q += ` AND repo = ?`
		args = append(args, repo)
	}
	if len(states) > 0 {
		q += ` AND state IN (?` + strings.Repeat(",?", len(states)-1) + `)`
		for _, st := range states {
			args = append(args, string(st))
		}
	}
	q += ` ORDER BY created_at DESC, id`
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	defer rows.Close()
	var out []*Agent
	for rows.Next() {
		var rec string
		if err := rows.Scan(&rec); err != nil {
			return nil, fmt.Errorf("list agents: %w", err)
		}
		var a Agent
		if err := json.Unmarshal([]byte(rec), &a); err != nil {
			return nil, fmt.Errorf("list agents: corrupt record: %w", err)
		}
		out = append(out, &a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list agents: %w", err)
	}
	return out, nil
}

// NameTaken reports whether repo already has an agent (live or in history)
// called name.
func (s *Store) NameTaken(ctx context.Context, repo, name string) (bool, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM agents WHERE repo = ? AND name = ?`, repo, name).Scan(&n); err != nil {
		return false, fmt.Errorf("check agent name: %w", err)
	}
	return n > 0, nil
}

// Transition is one recorded state change.
type Transition struct {
	From   State     `json:"from"`
	To     State     `json:"to"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// History returns the state changes of agent id, oldest first.
func (s *Store) History(ctx context.Context, id string) ([]Transition, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT from_state, to_state, reason, at FROM transitions WHERE agent_id = ? ORDER BY seq`, id)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", id, err)
	}
	defer rows.Close()
	var out []Transition
	for rows.Next() {
		var t Transition
		var from, to, at string
		if err := rows.Scan(&from, &to, &t.Reason, &at); err != nil {
			return nil, fmt.Errorf("history of %s: %w", id, err)
		}
		t.From, t.To = State(from), State(to)
		t.At, _ = time.Parse(time.RFC3339Nano, at)
		out = append(out, t)
	}
	return out, rows.Err()
}

// Resolve finds the agent ref names: a full id, a unique id prefix or a
// name. Names are looked up in repo first (when given), then everywhere.
func (s *Store) Resolve(ctx context.Context, ref, repo string) (*Agent, error) {
	if ref == "" {
		return nil, fmt.Errorf("%w: empty id", ErrNotFound)
	}
	if a, err := s.Get(ctx, ref); err == nil {
		return a, nil
	} else if !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	byName := func(repo string) ([]string, error) {
		q, args := `SELECT id FROM agents WHERE name = ?`, []any{ref}
		if repo != "" {
			q += ` AND repo = ?`
			args = append(args, repo)
		}
		return s.ids(ctx, q, args...)
	}
	if repo != "" {
		ids, err := byName(repo)
		if err != nil {
			return nil, err
		}
		if len(ids) == 1 {
			return s.Get(ctx, ids[0])
		}
	}
	ids, err := byName("")
	if err != nil {
		return nil, err
	}
	if len(ids) == 1 {
		return s.Get(ctx, ids[0])
	}
	if len(ids) > 1 {
		return nil, &AmbiguousError{Ref: ref, IDs: ids}
	}
	// An id prefix: escape LIKE's wildcards.
	esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(ref)
	ids, err = s.ids(ctx, `SELECT id FROM agents WHERE id LIKE ? ESCAPE '\' ORDER BY id LIMIT 10`, esc+"%")
	if err != nil {
		return nil, err
	}
	switch len(ids) {
	case 0:
		return nil, fmt.Errorf("%w: no agent has the id, id prefix or name %q", ErrNotFound, ref)
	case 1:
		return s.Get(ctx, ids[0])
	default:
		return nil, &AmbiguousError{Ref: ref, IDs: ids}
	}
}

func (s *Store) ids(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("resolve agent: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("resolve agent: %w", err)
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// AmbiguousError says a reference matched several agents.
type AmbiguousError struct {
	Ref string
	IDs []string
}

func (e *AmbiguousError) Error() string {
	return fmt.Sprintf("%q matches several agents (%s); give more of the id", e.Ref, strings.Join(e.IDs, ", "))
}

// PortLease is a block of ports given to an agent.
type PortLease struct {
	Start, Count int
	AgentID      string
}

// PortLeases returns every block of ports leased to an agent.
func (s *Store) PortLeases(ctx context.Context) ([]PortLease, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT start, count, agent_id FROM port_leases`)
	if err != nil {
		return nil, fmt.Errorf("port leases: %w", err)
	}
	defer rows.Close()
	var out []PortLease
	for rows.Next() {
		var l PortLease
		if err := rows.Scan(&l.Start, &l.Count, &l.AgentID); err != nil {
			return nil, fmt.Errorf("port leases: %w", err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// LeasePorts records a block of ports for an agent.
func (s *Store) LeasePorts(ctx context.Context, l PortLease) error {
	if _, err := s.db.ExecContext(ctx, `INSERT INTO port_leases (start, count, agent_id, at) VALUES (?, ?, ?, ?)`,
		l.Start, l.Count, l.AgentID, ts(time.Now())); err != nil {
		return fmt.Errorf("lease ports %d-%d: %w", l.Start, l.Start+l.Count-1, err)
	}
	return nil
}

// ReleasePorts frees an agent's block of ports (no-op when it has none).
func (s *Store) ReleasePorts(ctx context.Context, agentID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM port_leases WHERE agent_id = ?`, agentID); err != nil {
		return fmt.Errorf("release ports of %s: %w", agentID, err)
	}
	return nil
}
