package agents

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree"
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

// makeWorktree gives agent a its block of ports and its worktree: one
// claimed from the warm pool (warm, with its copies and setup done), else
// a new one. The ports are leased first, so that a lease that fails costs
// no pool entry and leaves nothing to undo; whatever fails later, the
// caller's releaseWorktree releases the lease with the worktree, the same
// way for both kinds.
func (m *Manager) makeWorktree(ctx context.Context, a *Agent, cfg *config.Config, progress func(string)) (warm bool, stage string, err error) {
	if cfg.Ports.Range != "" {
		progress("leasing ports")
		start, count, err := m.leasePorts(ctx, a, cfg)
		if err != nil {
			return false, "ports", err
		}
		m.update(a.ID, func(rec *Agent) { rec.Port, rec.PortCount = start, count })
		a.Port, a.PortCount = start, count
	}
	if cfg.Database.Kind == "postgres" {
		if err := m.copyPostgres(ctx, a, cfg, progress); err != nil {
			return false, "database", err
		}
	}
	if m.claimPooled(ctx, a, cfg) {
		progress("took a ready worktree from the pool")
		m.fillPool(a.Repo)
		if files, err := worktree.SetupFiles(a.Worktree); err == nil && len(files) > 0 {
			progress(setupFilesNote(files))
		}
		return true, "", nil
	}
	if cfg.Worktree.Pool > 0 {
		if why := m.poolUnavailable(a.Repo, cfg); why != "" {
			progress("warning: no ready worktree, the warm pool could not be filled: " + why + " (fix it, then change .bgagents.toml or restart the daemon to try again at once)")
		}
	}
	progress("creating worktree " + a.Worktree)
	rs := m.repo(a.Repo)
	// The repository's git lock is held only while git registers the
	// worktree, not during the checkout.
	if err := worktree.CreateLocking(ctx, a.Repo, a.Worktree, a.Branch, a.BaseCommit, &rs.git); err != nil {
		return false, "create worktree", err
	}
	return false, "", nil
}

// copyPostgres makes the agent's own copy of the Postgres template. It runs
// before a pool worktree is claimed (it needs no worktree), so a copy that
// fails (a busy template) uses up no pool entry.
func (m *Manager) copyPostgres(ctx context.Context, a *Agent, cfg *config.Config, progress func(string)) error {
	name, err := agentDatabaseName(cfg.Database.URL, a)
	if err != nil {
		return err
	}
	u, err := provision.AgentURL(cfg.Database.URL, name)
	if err != nil {
		return err
	}
	progress("copying database into " + name)
	// Until CREATE DATABASE answers, the name is kept only beside the
	// agent: the record names a database only once this agent made it.
	creating := filepath.Join(m.agentDir(a.ID), databaseCreatingFile)
	if err := writeFileAtomic(creating, []byte(u+"\n")); err != nil {
		return fmt.Errorf("copy database: %w", err)
	}
	if _, err := provision.CopyPostgres(ctx, cfg.Database.URL, name); err != nil {
		// Interrupted, the server may have made the copy all the same:
		// the file stays, and releaseResources drops what it names.
		// Any other failure made nothing (an existing database is
		// somebody else's).
		if ctx.Err() == nil || errors.Is(err, provision.ErrDatabaseExists) {
			_ = os.Remove(creating)
		}
		return err
	}
	m.update(a.ID, func(rec *Agent) { rec.DatabaseURL = u })
	a.DatabaseURL = u
	_ = os.Remove(creating)
	return nil
}

// setupFilesNote tells the user which files setup left that git does not
// ignore, and what becomes of them.
func setupFilesNote(files []string) string {
	return fmt.Sprintf("setup left %d file(s) git does not ignore: %s; they are left out of the agent's commits unless it changes them", len(files), summarize(files))
}

// prepare gives a freshly created worktree (whose ports makeWorktree
// leased) what the agent needs before it starts: copies of the gitignored
// files, its own copy of the database and the setup commands. What it made
// is recorded on the agent as it goes, so releaseResources can undo it
// after any failure.
//
// warm is set for a worktree claimed from the pool: its copies and setup
// are already done.
func (m *Manager) prepare(ctx context.Context, r *run, a *Agent, cfg *config.Config, warm bool, progress func(string)) (string, error) {
	var paths []string
	if !warm {
		include, err := provision.WorktreeInclude(ctx, a.Repo)
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
		before, err := worktree.UncommittedFiles(ctx, a.Worktree)
		if err != nil {
			return "setup", err
		}
		// The output goes to the agent's event log (`bgagents logs`) and
		// to setup.log, never to stdout.log: what the agent prints there
		// is its result.
		out, err := m.newSetupOutput(r.dir, a.ID)
		if err != nil {
			return "setup", err
		}
		pidFile := filepath.Join(r.dir, setupPIDFile)
		err = runSetup(ctx, cfg, a.Worktree, agentEnv(a), out, provision.SetupHooks{
			Step: func(i int, argv []string) {
				out.Flush()
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
		out.Close()
		if err != nil {
			return "setup", err
		}
		files, err := worktree.RecordSetupFiles(ctx, a.Worktree, before)
		if err != nil {
			return "setup", err
		}
		if len(files) > 0 {
			progress(setupFilesNote(files))
		}
	}
	return "", nil
}

// setupOutputFile keeps the whole output of an agent's setup commands.
const setupOutputFile = "setup.log"

// setupOutput is where the output of an agent's setup commands goes:
// setupOutputFile, and the agent's event log as output events of stream
// "setup", one a line, appended in batches (at most setupFlushEvery
// after a line arrives).
type setupOutput struct {
	m    *Manager
	id   string
	file *os.File

	mu      sync.Mutex
	partial []byte
	pending []Event
	timer   *time.Timer
	closed  bool
}

// setupFlushEvery bounds how long a line of setup output waits before it
// is in the event log.
const setupFlushEvery = 200 * time.Millisecond

func (m *Manager) newSetupOutput(dir, id string) (*setupOutput, error) {
	f, err := os.OpenFile(filepath.Join(dir, setupOutputFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("setup output: %w", err)
	}
	return &setupOutput{m: m, id: id, file: f}, nil
}

// Write never fails: a setup command must not stall on its output.
func (o *setupOutput) Write(p []byte) (int, error) {
	_, _ = o.file.Write(p)
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return len(p), nil
	}
	data := append(o.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		o.addLocked(data[:i])
		data = data[i+1:]
	}
	if len(data) > maxLine {
		o.addLocked(data)
		data = nil
	}
	o.partial = append([]byte(nil), data...)
	switch {
	case len(o.pending) >= 512:
		o.flushLocked()
	case len(o.pending) > 0 && o.timer == nil:
		o.timer = time.AfterFunc(setupFlushEvery, o.Flush)
	}
	return len(p), nil
}

func (o *setupOutput) addLocked(line []byte) {
	o.pending = append(o.pending, Event{
		Time: time.Now().UTC(), Kind: providers.KindOutput, Stream: "setup",
		Text: strings.TrimRight(string(line), "\r"),
	})
}

// Flush appends the complete lines written so far to the event log.
func (o *setupOutput) Flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushLocked()
}

func (o *setupOutput) flushLocked() {
	if o.timer != nil {
		o.timer.Stop()
		o.timer = nil
	}
	if len(o.pending) == 0 {
		return
	}
	evs := o.pending
	o.pending = nil
	o.m.appendProvisionEvents(o.id, evs)
}

// Close appends what is left, a last line without a newline included.
func (o *setupOutput) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return
	}
	if len(o.partial) > 0 {
		o.addLocked(o.partial)
		o.partial = nil
	}
	o.flushLocked()
	o.closed = true
	_ = o.file.Close()
}

// appendProvisionEvents appends events to the log of an agent being
// prepared and publishes them (see appendOnce).
func (m *Manager) appendProvisionEvents(id string, evs []Event) {
	m.mu.Lock()
	r := m.runs[id]
	m.mu.Unlock()
	m.evMu.Lock()
	defer m.evMu.Unlock()
	if r != nil && r.log != nil {
		m.appendEventsLocked(id, r.log, evs)
		return
	}
	l, err := openEventLog(m.agentDir(id))
	if err != nil {
		m.log.Warn("setup output", zap.String("id", id), zap.Error(err))
		return
	}
	m.appendEventsLocked(id, l, evs)
	_ = l.close()
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
	m.killRecordedSetup(ctx, filepath.Join(m.agentDir(id), setupPIDFile), "stopped a setup command the previous daemon left running", zap.String("id", id))
}

// killRecordedSetup stops the process group recorded in path ("PGID
// STARTTIME", written when a setup command started), unless its pid now
// belongs to another process, and removes the record.
func (m *Manager) killRecordedSetup(ctx context.Context, path, msg string, fields ...zap.Field) {
	data, err := os.ReadFile(path)
	if err != nil {
		return
	}
	var pgid int
	var start uint64
	if _, err := fmt.Sscan(string(data), &pgid, &start); err == nil {
		kctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if provision.KillSetupGroup(kctx, pgid, start) {
			m.log.Info(msg, append(fields, zap.Int("pgid", pgid))...)
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
	tmpl, err := provision.TemplateDatabase(templateURL)
	if err != nil {
		return "", err
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
	// Bounded: callers hold the repository's git lock, and a copy that
	// cannot be dropped now is recorded and dropped later.
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
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
