package agents

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree/provision"
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
	}
	switch cfg.Database.Kind {
	case "postgres":
		name, err := agentDatabaseName(cfg.Database.URL, a)
		if err != nil {
			return "database", err
		}
		progress("copying database into " + name)
		// Recorded before the copy: a crash or cancel during CREATE
		// DATABASE still leaves the name to drop.
		u, err := provision.AgentURL(cfg.Database.URL, name)
		if err != nil {
			return "database", err
		}
		m.update(a.ID, func(rec *Agent) { rec.DatabaseURL = u })
		a.DatabaseURL = u
		if _, err := provision.CopyPostgres(ctx, cfg.Database.URL, name); err != nil {
			return "database", err
		}
	case "sqlite":
		src, dst := filepath.Join(a.Repo, cfg.Database.Path), filepath.Join(a.Worktree, cfg.Database.Path)
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
		err = provision.RunSetup(ctx, a.Worktree, agentEnv(a), cfg.Worktree.Setup, out, func(i int, argv []string) {
			progress(fmt.Sprintf("setup %d/%d: %s", i+1, n, provision.FormatArgv(argv)))
		})
		if err != nil {
			return "setup", err
		}
	}
	return "", nil
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

// agentDatabaseName is "<template>_<agent name>", cut to PostgreSQL's 63
// bytes with the agent's id keeping it unique.
func agentDatabaseName(templateURL string, a *Agent) (string, error) {
	tmpl := ""
	if strings.Contains(templateURL, "://") {
		u, err := url.Parse(templateURL)
		if err != nil {
			return "", fmt.Errorf("database url: %w", err)
		}
		tmpl = strings.TrimPrefix(u.Path, "/")
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
	name := clean(tmpl) + "_" + clean(a.Name)
	if len(name) > 63 {
		name = name[:63-7] + "_" + a.ID[:6]
	}
	return name, nil
}

// releaseResources frees what prepare made outside the worktree: the port
// lease and the database copy (file copies and an SQLite copy live in the
// worktree and go with it).
func (m *Manager) releaseResources(ctx context.Context, a *Agent) error {
	var errs []error
	if err := m.store.ReleasePorts(ctx, a.ID); err != nil {
		errs = append(errs, err)
	}
	if a.DatabaseURL != "" && !strings.HasPrefix(a.DatabaseURL, "sqlite://") {
		if err := provision.DropPostgres(ctx, a.DatabaseURL); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
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
