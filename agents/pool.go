package agents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"go.uber.org/zap"

	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree"
	"github.com/bgagents/bgagents/worktree/provision"
)

// The warm pool keeps [worktree] pool worktrees per repository checked out
// and provisioned (gitignored files copied, setup commands run) so that a
// spawn claims one instead of checking out the whole tree: the branch is
// renamed, the directory moved, and the files brought to the agent's base
// commit incrementally. Ports and the database copy are the agent's own and
// are made at claim time. Entries are files under the daemon's state
// directory (pool/ID.json), so a restarted daemon finds them again.

// poolEntry is one ready worktree.
type poolEntry struct {
	ID     string `json:"id"`
	Repo   string `json:"repo"`
	Path   string `json:"path"`
	Branch string `json:"branch"`
	Commit string `json:"commit"`
	// Hash identifies what the entry was provisioned with (copy list,
	// .worktreeinclude, setup commands): an entry made under another
	// configuration is thrown away, not claimed.
	Hash string `json:"hash"`
}

// warmPool is the manager's pool state.
type warmPool struct {
	mu      sync.Mutex // guards entries, filling and loaded
	entries map[string][]*poolEntry
	filling map[string]bool
	loaded  map[string]bool
}

func (m *Manager) poolDir() string { return filepath.Join(m.opts.Home, "pool") }

// poolHash identifies the provisioning configuration of repo.
func poolHash(repo string, cfg *config.Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "copy=%q\nsetup=%q\n", cfg.Worktree.Copy, cfg.Worktree.Setup)
	if data, err := os.ReadFile(filepath.Join(repo, provision.WorktreeIncludeFile)); err == nil {
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// loadPoolLocked reads the entries of repo a previous daemon left.
func (m *Manager) loadPoolLocked(repo string) {
	if m.pool.loaded[repo] {
		return
	}
	m.pool.loaded[repo] = true
	files, _ := filepath.Glob(filepath.Join(m.poolDir(), "*.json"))
	for _, f := range files {
		var e poolEntry
		if readJSON(f, &e) != nil || e.Repo != repo {
			continue
		}
		if _, err := os.Stat(e.Path); err != nil {
			_ = os.Remove(f)
			continue
		}
		m.pool.entries[repo] = append(m.pool.entries[repo], &e)
	}
}

// claimPooled takes a ready worktree of a.Repo provisioned under the current
// configuration and turns it into the agent's: it returns false when there
// is none (or claiming failed), and the caller creates the worktree.
func (m *Manager) claimPooled(ctx context.Context, a *Agent, cfg *config.Config) bool {
	if cfg.Worktree.Pool <= 0 {
		// The pool was turned off: entries made before are thrown away.
		m.pool.mu.Lock()
		m.loadPoolLocked(a.Repo)
		stale := m.pool.entries[a.Repo]
		delete(m.pool.entries, a.Repo)
		m.pool.mu.Unlock()
		for _, x := range stale {
			m.dropPoolEntry(context.WithoutCancel(ctx), x)
		}
		return false
	}
	hash := poolHash(a.Repo, cfg)
	m.pool.mu.Lock()
	m.loadPoolLocked(a.Repo)
	var e *poolEntry
	var stale []*poolEntry
	keep := m.pool.entries[a.Repo][:0]
	for _, x := range m.pool.entries[a.Repo] {
		switch {
		case x.Hash != hash:
			stale = append(stale, x)
		case e == nil:
			e = x
		default:
			keep = append(keep, x)
		}
	}
	m.pool.entries[a.Repo] = keep
	m.pool.mu.Unlock()
	for _, x := range stale {
		m.dropPoolEntry(context.WithoutCancel(ctx), x)
	}
	if e == nil {
		return false
	}
	_ = os.Remove(filepath.Join(m.poolDir(), e.ID+".json"))
	rs := m.repo(a.Repo)
	rs.git.Lock()
	err := func() error {
		if _, err := worktree.Git(ctx, a.Repo, "worktree", "move", e.Path, a.Worktree); err != nil {
			return err
		}
		if _, err := worktree.Git(ctx, a.Repo, "branch", "-m", e.Branch, a.Branch); err != nil {
			return err
		}
		if e.Commit != a.BaseCommit {
			// Only the files that differ are rewritten; ignored files
			// (the copies, what setup made) stay.
			if _, err := worktree.Git(ctx, a.Worktree, "reset", "--hard", "-q", a.BaseCommit); err != nil {
				return err
			}
		}
		return nil
	}()
	rs.git.Unlock()
	if err != nil {
		m.log.Warn("claim pooled worktree; creating one instead", zap.String("id", a.ID), zap.Error(err))
		// Put things back where they can be removed.
		m.dropPoolEntry(context.WithoutCancel(ctx), e)
		rs.git.Lock()
		_ = worktree.Remove(context.WithoutCancel(ctx), a.Repo, a.Worktree, true)
		_ = worktree.DeleteBranch(context.WithoutCancel(ctx), a.Repo, a.Branch, true)
		rs.git.Unlock()
		return false
	}
	m.log.Info("claimed a pooled worktree", zap.String("id", a.ID), zap.String("pool", e.ID))
	return true
}

// dropPoolEntry removes a pool worktree and its branch.
func (m *Manager) dropPoolEntry(ctx context.Context, e *poolEntry) {
	rs := m.repo(e.Repo)
	rs.git.Lock()
	_ = worktree.Remove(ctx, e.Repo, e.Path, true)
	_ = worktree.DeleteBranch(ctx, e.Repo, e.Branch, true)
	rs.git.Unlock()
	_ = os.Remove(filepath.Join(m.poolDir(), e.ID+".json"))
}

// fillPool tops the pool of repo up to [worktree] pool entries, in the
// background, one fill per repository at a time.
func (m *Manager) fillPool(repo string) {
	cfg, err := config.Load(repo)
	if err != nil || cfg.Worktree.Pool <= 0 || m.ctx.Err() != nil {
		return
	}
	m.pool.mu.Lock()
	if m.pool.filling[repo] {
		m.pool.mu.Unlock()
		return
	}
	m.pool.filling[repo] = true
	m.loadPoolLocked(repo)
	m.pool.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer func() {
			m.pool.mu.Lock()
			m.pool.filling[repo] = false
			m.pool.mu.Unlock()
		}()
		hash := poolHash(repo, cfg)
		for m.ctx.Err() == nil {
			m.pool.mu.Lock()
			n := 0
			for _, e := range m.pool.entries[repo] {
				if e.Hash == hash {
					n++
				}
			}
			m.pool.mu.Unlock()
			if n >= cfg.Worktree.Pool {
				return
			}
			e, err := m.makePoolEntry(m.ctx, repo, cfg, hash)
			if err != nil {
				m.log.Warn("fill the worktree pool", zap.String("repo", repo), zap.Error(err))
				return
			}
			m.pool.mu.Lock()
			m.pool.entries[repo] = append(m.pool.entries[repo], e)
			m.pool.mu.Unlock()
		}
	}()
}

// makePoolEntry checks out and provisions one pool worktree at the commit
// of the branch agents start from by default.
func (m *Manager) makePoolEntry(ctx context.Context, repo string, cfg *config.Config, hash string) (*poolEntry, error) {
	base := cfg.Defaults.Base
	if base == "" {
		b, err := worktree.CurrentBranch(ctx, repo)
		if err != nil {
			return nil, err
		}
		base = b
	}
	commit, err := worktree.ResolveCommit(ctx, repo, base)
	if err != nil {
		return nil, err
	}
	id := newID()
	e := &poolEntry{ID: id, Repo: repo, Path: filepath.Join(cfg.WorktreeDir(repo), ".pool", id), Branch: "bgagents-pool/" + id, Commit: commit, Hash: hash}
	if err := os.MkdirAll(filepath.Dir(e.Path), 0o755); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	rs := m.repo(repo)
	rs.git.Lock()
	err = worktree.Create(ctx, repo, e.Path, e.Branch, commit)
	rs.git.Unlock()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*poolEntry, error) {
		m.dropPoolEntry(context.WithoutCancel(ctx), e)
		return nil, err
	}
	paths := append([]string{}, cfg.Worktree.Copy...)
	include, err := provision.ReadWorktreeInclude(repo)
	if err != nil {
		return fail(err)
	}
	if paths = append(paths, include...); len(paths) > 0 {
		if _, err := provision.CopyIgnored(ctx, repo, e.Path, paths); err != nil {
			return fail(err)
		}
	}
	if len(cfg.Worktree.Setup) > 0 {
		// No agent owns the worktree yet: the developer's own PORT or
		// DATABASE_URL must not reach the setup (a migration would run
		// against their database).
		env := append(daemonEnv(true), "PWD="+e.Path, "BGAGENTS_WORKTREE="+e.Path, "BGAGENTS_MAIN_CHECKOUT="+repo, "BGAGENTS_POOL=1")
		if err := runSetup(ctx, cfg, e.Path, env, io.Discard, provision.SetupHooks{}); err != nil {
			return fail(err)
		}
	}
	if err := os.MkdirAll(m.poolDir(), 0o700); err != nil {
		return fail(err)
	}
	if err := writeJSONAtomic(filepath.Join(m.poolDir(), id+".json"), e); err != nil {
		return fail(err)
	}
	return e, nil
}
