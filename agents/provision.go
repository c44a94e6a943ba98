package agents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree/provision"
)

// Files in an agent's state directory that track what provisioning made
// outside the record.
const (
	// setupPIDFile holds "PGID STARTTIME" of the setup command running
	// for the agent, so that a restarted daemon can stop a setup its
	// predecessor left running before it removes the worktree.
	setupPIDFile = "setup.pid"
	// databaseCreatingFile holds the URL of the database copy while
	// CREATE DATABASE runs: the copy's name carries the agent's id, so
	// whatever has that name after an interrupted CREATE is this
	// agent's own and is dropped with the agent's other resources.
	databaseCreatingFile = "database.creating"
	// releasePendingFile records resources (the database copy) that could
	// not be released when the worktree was removed; `rm` of the agent
	// and the next daemon start try again.
	releasePendingFile = "release.json"
)

// prepare gives a freshly created worktree what the agent needs before it
// starts: its block of ports, copies of the gitignored files, its own copy
// of the database and the setup commands. What it made is recorded on the
// agent as it goes, so releaseResources can undo it after any failure.
//
// warm is set for a worktree claimed from the pool: its copies and setup
// are already done.
func (m *Manager) prepare(ctx context.Context, r *run, a *Agent, cfg *config.Config, warm bool, progress func(string)) (string, error) {
	if cfg.Ports.Range != "" {
		progress("leasing ports")
		start, count, err := m.leasePorts(ctx, a, cfg)
		if err != nil {
			return "ports", err
		}
		m.update(a.ID, func(rec *Agent) { rec.Port, rec.PortCount = start, count })
		a.Port, a.PortCount = start, count
	}
	var paths []string
	if !warm {
		include, err := provision.ReadWorktreeInclude(a.Repo)
		if err != nil {
			return "copy files", err
		}
		paths = append(append(paths, cfg.Worktree.Copy...), include...)
	}
	if len(paths) > 0 {
		progress("copying " + strings.Join(paths, ", "))
		skipped, err := provision.CopyIgnored(ctx, a.Repo, a.Worktree, paths)
		if err != nil {
			return "copy files", err
		}
		if len(skipped) > 0 {
			m.log.Info("not copied: git does not ignore them (tracked files come with the checkout; untracked ones are left out so they never land on the agent's branch)", zap.String("id", a.ID), zap.Strings("paths", skipped))
		}
		for _, p := range skipped {
			// Tracked paths come with the checkout; an untracked one that
			// git does not ignore would be committed to the agent's
			// branch, so it is left out, and the user should know.
			if tracked, _, err := provision.GitStatus(ctx, a.Repo, p); err == nil && !tracked {
				progress(fmt.Sprintf("warning: %s was not copied: git does not ignore it, so the copy would be committed to the agent's branch; add it to .gitignore to have it copied", p))
			}
		}
	}
	switch cfg.Database.Kind {
	case "postgres":
		name, err := agentDatabaseName(cfg.Database.URL, a)
		if err != nil {
			return "database", err
		}
		u, err := provision.AgentURL(cfg.Database.URL, name)
		if err != nil {
			return "database", err
		}
		progress("copying database into " + name)
		// Until CREATE DATABASE answers, the name is kept only beside the
		// agent: the record names a database only once this agent made it.
		creating := filepath.Join(r.dir, databaseCreatingFile)
		if err := writeFileAtomic(creating, []byte(u+"\n")); err != nil {
			return "database", fmt.Errorf("copy database: %w", err)
		}
		if _, err := provision.CopyPostgres(ctx, cfg.Database.URL, name); err != nil {
			// Interrupted, the server may have made the copy all the same:
			// the file stays, and releaseResources drops what it names.
			// Any other failure made nothing (an existing database is
			// somebody else's).
			if ctx.Err() == nil || errors.Is(err, provision.ErrDatabaseExists) {
				_ = os.Remove(creating)
			}
			return "database", err
		}
		m.update(a.ID, func(rec *Agent) { rec.DatabaseURL = u })
		a.DatabaseURL = u
		_ = os.Remove(creating)
	case "sqlite":
		src, dst := filepath.Join(a.Repo, cfg.Database.Path), filepath.Join(a.Worktree, cfg.Database.Path)
		tracked, ignored, err := provision.GitStatus(ctx, a.Worktree, cfg.Database.Path)
		switch {
		case err != nil:
			return "database", fmt.Errorf("copy database %s: %w", cfg.Database.Path, err)
		case tracked:
			return "database", fmt.Errorf("copy database %s: git tracks it, so the agent's copy would be committed to its branch; untrack it (git rm --cached %s) and add it to .gitignore", cfg.Database.Path, cfg.Database.Path)
		case !ignored:
			return "database", fmt.Errorf("copy database %s: git does not ignore it, so the agent's copy would be committed to its branch; add it to .gitignore", cfg.Database.Path)
		}
		progress("copying database " + cfg.Database.Path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return "database", fmt.Errorf("copy database: %w", err)
		}
		if err := provision.CopySQLite(src, dst); err != nil {
			return "database", err
		}
		u := "sqlite://" + dst
		m.update(a.ID, func(rec *Agent) { rec.DatabaseURL = u })
		a.DatabaseURL = u
	}
	if n := len(cfg.Worktree.Setup); n > 0 && !warm {
		out, err := os.OpenFile(filepath.Join(r.dir, stdoutFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return "setup", fmt.Errorf("setup output: %w", err)
		}
		defer out.Close()
		pidFile := filepath.Join(r.dir, setupPIDFile)
		err = runSetup(ctx, cfg, a.Worktree, agentEnv(a), out, provision.SetupHooks{
			Step: func(i int, argv []string) {
				progress(fmt.Sprintf("setup %d/%d: %s", i+1, n, provision.FormatArgv(argv)))
			},
			Started: func(pgid int) {
				line := fmt.Sprintf("%d %d\n", pgid, provision.ProcessStartTime(pgid))
				if err := writeFileAtomic(pidFile, []byte(line)); err != nil {
					m.log.Warn("record setup pid", zap.String("id", a.ID), zap.Error(err))
				}
			},
			Ended: func(int) { _ = os.Remove(pidFile) },
		})
		if err != nil {
			return "setup", err
		}
	}
	return "", nil
}

// runSetup runs the setup commands of cfg in dir, stopping them after
// [worktree] setup_timeout.
func runSetup(ctx context.Context, cfg *config.Config, dir string, env []string, out io.Writer, hooks provision.SetupHooks) error {
	limit := cfg.SetupTimeout()
	sctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	err := provision.RunSetupHooks(sctx, dir, env, cfg.Worktree.Setup, out, hooks)
	if err != nil && ctx.Err() == nil && errors.Is(sctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("setup timed out after %s ([worktree] setup_timeout): %w", limit, err)
	}
	return err
}

// killSetup stops a setup command a previous daemon left running for agent
// id (see setupPIDFile).
func (m *Manager) killSetup(ctx context.Context, id string) {
	path := filepath.Join(m.agentDir(id), setupPIDFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var pgid int
	var start uint64
	if _, err := fmt.Sscan(string(data), &pgid, &start); err == nil {
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if provision.KillSetupGroup(kctx, pgid, start) {
			m.log.Info("stopped a setup command the previous daemon left running", zap.String("id", id), zap.Int("pgid", pgid))
		}
		cancel()
	}
	_ = os.Remove(path)
}

// leasePorts finds a free block of ports and records it for the agent; one
// allocation at a time, so two agents never get the same block.
func (m *Manager) leasePorts(ctx context.Context, a *Agent, cfg *config.Config) (int, int, error) {
	rng, err := provision.ParseRange(cfg.Ports.Range)
	if err != nil {
		return 0, 0, err
	}
	per := cfg.PortsPerAgent()
	m.portMu.Lock()
	defer m.portMu.Unlock()
	leases, err := m.store.PortLeases(ctx)
	if err != nil {
		return 0, 0, err
	}
	taken := func(start, count int) bool {
		for _, l := range leases {
			if start < l.Start+l.Count && l.Start < start+count {
				return true
			}
		}
		return false
	}
	start, err := provision.AllocatePorts(rng, per, a.Repo+"\x00"+a.Name, taken)
	if err != nil {
		return 0, 0, err
	}
	if err := m.store.LeasePorts(ctx, PortLease{Start: start, Count: per, AgentID: a.ID}); err != nil {
		return 0, 0, err
	}
	return start, per, nil
}

// agentDatabaseName is "<template>_<agent name>_<agent id>", the name cut
// to fit PostgreSQL's 63 bytes. The id keeps it unique across
// repositories and daemons that copy the same template, so a database
// of that name can only be this agent's.
func agentDatabaseName(templateURL string, a *Agent) (string, error) {
	tmpl := ""
	if strings.Contains(templateURL, "://") {
		u, err := url.Parse(templateURL)
		if err != nil {
			return "", fmt.Errorf("database url: %w", err)
		}
		tmpl = strings.TrimPrefix(u.Path, "/")
		if q := u.Query().Get("dbname"); q != "" {
			tmpl = q
		}
	} else {
		for _, kv := range strings.Fields(templateURL) {
			if k, v, ok := strings.Cut(kv, "="); ok && k == "dbname" {
				tmpl = strings.Trim(v, "'")
			}
		}
	}
	if tmpl == "" {
		return "", errors.New("database url names no database (e.g. postgres://localhost/app_dev)")
	}
	clean := func(s string) string {
		var b strings.Builder
		for _, r := range strings.ToLower(s) {
			if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
		return b.String()
	}
	id := clean(a.ID)
	prefix := clean(tmpl) + "_" + clean(a.Name)
	if max := 63 - 1 - len(id); len(prefix) > max {
		prefix = prefix[:max]
	}
	return prefix + "_" + id, nil
}

// releaseResources frees what prepare made outside the worktree: the port
// lease and the database copy (file copies and an SQLite copy live in the
// worktree and go with it), including a copy whose CREATE DATABASE was
// interrupted. It drops only a database this agent made.
func (m *Manager) releaseResources(ctx context.Context, a *Agent) error {
	var errs []error
	if err := m.store.ReleasePorts(ctx, a.ID); err != nil {
		errs = append(errs, err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if a.DatabaseURL != "" && !strings.HasPrefix(a.DatabaseURL, "sqlite://") {
		if err := provision.DropPostgres(dctx, a.DatabaseURL); err != nil {
			errs = append(errs, err)
		}
	}
	creating := filepath.Join(m.agentDir(a.ID), databaseCreatingFile)
	if data, err := os.ReadFile(creating); err == nil {
		if u := strings.TrimSpace(string(data)); u != "" && u != a.DatabaseURL {
			if err := provision.DropPostgres(dctx, u); err != nil {
				errs = append(errs, err)
			}
		}
		if len(errs) == 0 {
			_ = os.Remove(creating)
		}
	}
	return errors.Join(errs...)
}

// pendingRelease is what releasePendingFile holds.
type pendingRelease struct {
	DatabaseURL string `json:"databaseUrl,omitempty"`
	Error       string `json:"error"`
}

// ReleasePendingError is returned when an agent's worktree and branch
// were removed but its resources could not all be released; they are
// recorded and released later (`rm` of the agent, the next daemon start).
type ReleasePendingError struct {
	Name string
	Err  error
}

func (e *ReleasePendingError) Error() string {
	return fmt.Sprintf("the resources of agent %s could not all be released (%v); rm %s tries again, and so does the next daemon start", e.Name, e.Err, e.Name)
}

func (e *ReleasePendingError) Unwrap() error { return e.Err }

// releaseOrRecord releases a's resources; what cannot be released is
// recorded in releasePendingFile and a *ReleasePendingError returned.
func (m *Manager) releaseOrRecord(ctx context.Context, a *Agent) error {
	err := m.releaseResources(ctx, a)
	path := filepath.Join(m.agentDir(a.ID), releasePendingFile)
	if err == nil {
		_ = os.Remove(path)
		return nil
	}
	m.log.Warn("release resources", zap.String("id", a.ID), zap.Error(err))
	if werr := writeJSONAtomic(path, pendingRelease{DatabaseURL: a.DatabaseURL, Error: err.Error()}); werr != nil {
		m.log.Error("record resources to release", zap.String("id", a.ID), zap.Error(werr))
	}
	return &ReleasePendingError{Name: a.Name, Err: err}
}

// hasPendingRelease reports whether agent id has resources left to release.
func (m *Manager) hasPendingRelease(id string) bool {
	_, err := os.Stat(filepath.Join(m.agentDir(id), releasePendingFile))
	return err == nil
}

// retryPendingRelease tries again to release what the removal of agent a
// left (releasePendingFile), and clears the record's resources when done.
func (m *Manager) retryPendingReleaseLocked(ctx context.Context, a *Agent) error {
	var p pendingRelease
	if err := readJSON(filepath.Join(m.agentDir(a.ID), releasePendingFile), &p); err != nil {
		return nil
	}
	stub := *a
	if p.DatabaseURL != "" {
		stub.DatabaseURL = p.DatabaseURL
	}
	if err := m.releaseOrRecord(ctx, &stub); err != nil {
		return err
	}
	m.log.Info("released resources left by an earlier removal", zap.String("id", a.ID))
	a.Port, a.PortCount, a.DatabaseURL = 0, 0, ""
	a.UpdatedAt = time.Now().UTC()
	if err := m.store.Put(ctx, a); err != nil {
		return err
	}
	m.publishAgent(a)
	return nil
}

// retryPendingReleases runs at daemon start: it releases what removals of
// earlier daemons could not.
func (m *Manager) retryPendingReleases(ctx context.Context) {
	files, _ := filepath.Glob(filepath.Join(m.opts.Home, "agents", "*", releasePendingFile))
	for _, f := range files {
		id := filepath.Base(filepath.Dir(f))
		func() {
			unlock := m.lockAgent(id)
			defer unlock()
			a, err := m.store.Get(ctx, id)
			if err != nil || a.State.Live() && !a.Cleaned {
				return // a live agent's resources are its own
			}
			if err := m.retryPendingReleaseLocked(ctx, a); err != nil {
				m.log.Warn("release resources left by an earlier removal", zap.String("id", id), zap.Error(err))
			}
		}()
	}
}

// clearResources forgets, in a record, resources that were released.
func clearResources(a *Agent) {
	a.Port, a.PortCount, a.DatabaseURL = 0, 0, ""
}

// daemonEnv is the daemon's environment as agents and setup commands
// inherit it: without the daemon's own directory, bgagents' internals and
// the git variables that would point git at another repository. With
// noResources, also without the variables that name an agent's own
// resources (PORT, DATABASE_URL, ...): a pool worktree's setup runs before
// the worktree has an agent, and must not reach the developer's own
// database or port through them.
func daemonEnv(noResources bool) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "PWD", "OLDPWD", "BGAGENTS_GRACE",
			// A daemon started from a git hook must not point the agent's
			// git at another repository.
			"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
			"GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_PREFIX", "GIT_NAMESPACE":
			continue
		}
		if noResources && isResourceVar(name) {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// isResourceVar reports whether name is one of the variables resourceEnv
// sets.
func isResourceVar(name string) bool {
	switch name {
	case "PORT", "DATABASE_URL", "BGAGENTS_DATABASE_URL":
		return true
	}
	return strings.HasPrefix(name, "BGAGENTS_PORT")
}

// resourceEnv is the environment that points an agent (and its setup
// commands) at its own resources.
func resourceEnv(a *Agent) []string {
	var env []string
	if a.Port > 0 {
		env = append(env,
			fmt.Sprintf("PORT=%d", a.Port),
			fmt.Sprintf("BGAGENTS_PORT=%d", a.Port),
			fmt.Sprintf("BGAGENTS_PORT_COUNT=%d", a.PortCount))
	}
	if a.DatabaseURL != "" {
		env = append(env, "DATABASE_URL="+a.DatabaseURL, "BGAGENTS_DATABASE_URL="+a.DatabaseURL)
	}
	return env
}
