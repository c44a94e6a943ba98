package agents

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

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
// are made at claim time.
//
// Entries are files under the daemon's state directory, so a restarted
// daemon finds them again:
//
//	pool/ID.json       a ready entry
//	pool/ID.making     an entry being made, or being claimed: whatever is
//	                   at its path and branch belongs to nobody once the
//	                   daemon that wrote it is gone
//	pool/ID.setup.pid  "PGID STARTTIME" of the entry's setup command while
//	                   it runs
//
// A daemon loads a repository's entries once (at start for the
// repositories it finds here, else on the repository's first spawn), and
// then removes what crashed fills and claims left: their worktrees,
// branches and setup processes.
//
// Git calls that take the repository's locks are serialised by the
// repository's git lock. A fill holds it only while git registers the new
// worktree (`git worktree add --no-checkout`), a claim only for `git
// worktree move` and `git branch -m`: the checkout, the copies, the setup
// and a claim's reset to the agent's base run outside it, so a claim never
// waits behind another worktree's checkout.

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

// Suffixes of the files under poolDir.
const (
	poolReadySuffix  = ".json"
	poolMakingSuffix = ".making"
	poolSetupSuffix  = ".setup.pid"
	poolBranchPrefix = "bgagents-pool/"
)

// warmPool is the manager's pool state.
type warmPool struct {
	mu      sync.Mutex // guards entries, filling, loaded and loading
	entries map[string][]*poolEntry
	filling map[string]bool
	loaded  map[string]bool
	loading map[string]chan struct{} // closed when the repository's load is done
	// failed holds each repository's last failed fill: no new fill starts
	// for the same configuration until poolRetry has passed, and spawns
	// say why they were not warm.
	failed map[string]poolFailure
}

// poolFailure is a failed fill of a repository's pool.
type poolFailure struct {
	hash string
	err  string
	at   time.Time
}

// poolRetry is how long a fill that failed is not tried again under the
// same configuration (a changed configuration is tried at once).
const poolRetry = 10 * time.Minute

// poolUnavailable says why the repository's pool has no entries for cfg,
// when its last fill failed; "" otherwise.
func (m *Manager) poolUnavailable(repo string, cfg *config.Config) string {
	m.pool.mu.Lock()
	defer m.pool.mu.Unlock()
	f, ok := m.pool.failed[repo]
	if !ok || f.hash != poolHash(repo, cfg) {
		return ""
	}
	return f.err
}

func (m *Manager) poolDir() string { return filepath.Join(m.opts.Home, "pool") }

func (m *Manager) poolFile(id, suffix string) string {
	return filepath.Join(m.poolDir(), id+suffix)
}

// poolHash identifies the provisioning configuration of repo.
func poolHash(repo string, cfg *config.Config) string {
	h := sha256.New()
	fmt.Fprintf(h, "copy=%q\nsetup=%q\n", cfg.Worktree.Copy, cfg.Worktree.Setup)
	if data, err := os.ReadFile(filepath.Join(repo, provision.WorktreeIncludeFile)); err == nil {
		h.Write(data)
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// validPoolEntry reports whether e names what makePoolEntry makes: a
// worktree at .../.pool/ID on branch bgagents-pool/ID. Nothing else is
// ever removed as a pool entry.
func validPoolEntry(e *poolEntry) bool {
	if e.ID == "" || len(e.ID) > 64 || e.Repo == "" || !filepath.IsAbs(e.Path) {
		return false
	}
	for _, c := range e.ID {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return filepath.Base(e.Path) == e.ID && filepath.Base(filepath.Dir(e.Path)) == ".pool" &&
		filepath.Clean(e.Path) == e.Path && e.Branch == poolBranchPrefix+e.ID
}

// loadPool reads, once per daemon, the entries of repo a previous daemon
// left: ready entries become claimable, and what was left half made or
// half claimed is removed in the background. Concurrent callers wait for
// the reading (not for the removal).
func (m *Manager) loadPool(repo string) {
	m.pool.mu.Lock()
	if m.pool.loaded[repo] {
		m.pool.mu.Unlock()
		return
	}
	if m.pool.loading == nil {
		m.pool.loading = map[string]chan struct{}{}
	}
	if ch := m.pool.loading[repo]; ch != nil {
		m.pool.mu.Unlock()
		<-ch
		return
	}
	ch := make(chan struct{})
	m.pool.loading[repo] = ch
	m.pool.mu.Unlock()

	ready, orphans := m.readPool(repo)
	m.pool.mu.Lock()
	m.pool.entries[repo] = append(m.pool.entries[repo], ready...)
	m.pool.loaded[repo] = true
	delete(m.pool.loading, repo)
	m.pool.mu.Unlock()
	close(ch)
	m.sweepLater(orphans)
}

// readPool reads the pool files of repo: the ready entries whose worktree
// is there, and the rest, which nothing owns any more.
func (m *Manager) readPool(repo string) (ready, orphans []*poolEntry) {
	ents, _ := os.ReadDir(m.poolDir())
	for _, de := range ents {
		name := de.Name()
		var suffix string
		switch {
		case strings.HasSuffix(name, poolReadySuffix):
			suffix = poolReadySuffix
		case strings.HasSuffix(name, poolMakingSuffix):
			suffix = poolMakingSuffix
		default:
			continue
		}
		var e poolEntry
		if readJSON(filepath.Join(m.poolDir(), name), &e) != nil || e.Repo != repo {
			continue
		}
		if !validPoolEntry(&e) || e.ID != strings.TrimSuffix(name, suffix) {
			m.log.Warn("ignoring a pool file that names no pool worktree", zap.String("file", name))
			continue
		}
		if suffix == poolReadySuffix {
			if _, err := os.Stat(e.Path); err == nil {
				ready = append(ready, &e)
				continue
			}
		}
		orphans = append(orphans, &e)
	}
	return ready, orphans
}

// startPools runs at daemon start: the pools of the repositories a
// previous daemon left pool files for are loaded (what crashed fills and
// claims left is removed), entries made under another configuration are
// thrown away, and the pools are refilled.
func (m *Manager) startPools() {
	ents, _ := os.ReadDir(m.poolDir())
	repos := map[string]bool{}
	for _, de := range ents {
		if n := de.Name(); strings.HasSuffix(n, poolReadySuffix) || strings.HasSuffix(n, poolMakingSuffix) {
			var e poolEntry
			if readJSON(filepath.Join(m.poolDir(), n), &e) == nil && e.Repo != "" {
				repos[e.Repo] = true
			}
		}
	}
	if len(repos) == 0 || m.ctx.Err() != nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for repo := range repos {
			if m.ctx.Err() != nil {
				return
			}
			m.loadPool(repo)
			cfg, err := config.Load(repo)
			if err != nil {
				continue // a repository that is gone or misconfigured: its next spawn decides
			}
			m.pool.mu.Lock()
			stale := m.takeStaleLocked(repo, cfg)
			m.pool.mu.Unlock()
			m.sweepLater(stale)
			m.fillPool(repo)
		}
	}()
}

// takeStaleLocked removes from the pool of repo the entries cfg does not
// want (all of them with pool = 0) and returns them.
func (m *Manager) takeStaleLocked(repo string, cfg *config.Config) []*poolEntry {
	if cfg.Worktree.Pool <= 0 {
		stale := m.pool.entries[repo]
		delete(m.pool.entries, repo)
		return stale
	}
	hash := poolHash(repo, cfg)
	var stale []*poolEntry
	keep := m.pool.entries[repo][:0]
	for _, x := range m.pool.entries[repo] {
		if x.Hash != hash {
			stale = append(stale, x)
		} else {
			keep = append(keep, x)
		}
	}
	m.pool.entries[repo] = keep
	return stale
}

// claimPooled takes a ready worktree of a.Repo provisioned under the current
// configuration and turns it into the agent's: it returns false when there
// is none (or claiming failed), and the caller creates the worktree.
func (m *Manager) claimPooled(ctx context.Context, a *Agent, cfg *config.Config) bool {
	m.loadPool(a.Repo)
	m.pool.mu.Lock()
	// Entries made under another configuration (or all, with the pool
	// turned off) are thrown away, in the background.
	stale := m.takeStaleLocked(a.Repo, cfg)
	var e *poolEntry
	if list := m.pool.entries[a.Repo]; len(list) > 0 {
		e = list[0]
		m.pool.entries[a.Repo] = list[1:]
	}
	m.pool.mu.Unlock()
	m.sweepLater(stale)
	if e == nil {
		return false
	}
	// From here until the claim is done the entry is recorded as making:
	// a crash in between leaves a record the next daemon clears up.
	making := m.poolFile(e.ID, poolMakingSuffix)
	if err := os.Rename(m.poolFile(e.ID, poolReadySuffix), making); err != nil {
		m.log.Warn("claim pooled worktree; creating one instead", zap.String("id", a.ID), zap.Error(err))
		m.sweepLater([]*poolEntry{e})
		return false
	}
	rs := m.repo(a.Repo)
	moved, renamed := false, false
	rs.git.Lock()
	err := worktree.Move(ctx, a.Repo, e.Path, a.Worktree)
	if err == nil {
		moved = true
		if err = worktree.RenameBranch(ctx, a.Repo, e.Branch, a.Branch); err == nil {
			renamed = true
		}
	}
	rs.git.Unlock()
	if err == nil && e.Commit != a.BaseCommit {
		// The worktree is the agent's now: its reset takes no lock. Only
		// the files that differ are rewritten; ignored files (the copies,
		// what setup made) stay.
		err = worktree.ResetTo(ctx, a.Worktree, a.BaseCommit)
	}
	if err != nil {
		m.log.Warn("claim pooled worktree; creating one instead", zap.String("id", a.ID), zap.String("pool", e.ID), zap.Error(err))
		cctx := context.WithoutCancel(ctx)
		// What the claim moved or renamed is under the agent's names now;
		// the rest is still under the entry's.
		if moved {
			rs.git.Lock()
			_ = worktree.Remove(cctx, a.Repo, a.Worktree, true)
			if renamed {
				_ = worktree.DeleteBranch(cctx, a.Repo, a.Branch, true)
			}
			rs.git.Unlock()
		}
		m.sweepPoolEntry(cctx, e)
		return false
	}
	_ = os.Remove(making)
	m.log.Info("claimed a pooled worktree", zap.String("id", a.ID), zap.String("pool", e.ID))
	return true
}

// sweepLater removes entries in the background.
func (m *Manager) sweepLater(entries []*poolEntry) {
	if len(entries) == 0 || m.ctx.Err() != nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for _, e := range entries {
			if m.ctx.Err() != nil {
				return // left for the next daemon: the records stay
			}
			m.dropPoolEntry(m.ctx, e)
		}
	}()
}

// dropPoolEntry removes an entry that nobody can claim any more (it was
// taken out of the pool, or it is an orphan): it is recorded as making
// first, so an interrupted removal is finished by the next daemon.
func (m *Manager) dropPoolEntry(ctx context.Context, e *poolEntry) {
	ready, making := m.poolFile(e.ID, poolReadySuffix), m.poolFile(e.ID, poolMakingSuffix)
	if err := os.Rename(ready, making); err != nil && !errors.Is(err, fs.ErrNotExist) {
		m.log.Warn("drop pool entry", zap.String("pool", e.ID), zap.Error(err))
	}
	m.sweepPoolEntry(ctx, e)
}

// sweepPoolEntry removes what an entry may have: its setup process group,
// its worktree and its branch, then its records. When something cannot
// be removed, the records stay for the next attempt.
func (m *Manager) sweepPoolEntry(ctx context.Context, e *poolEntry) {
	if !validPoolEntry(e) {
		return
	}
	m.killPoolSetup(ctx, e.ID)
	if err := m.removePoolWorktree(ctx, e); err != nil {
		m.log.Warn("remove pool worktree", zap.String("pool", e.ID), zap.String("path", e.Path), zap.Error(err))
		return
	}
	_ = os.Remove(m.poolFile(e.ID, poolReadySuffix))
	_ = os.Remove(m.poolFile(e.ID, poolMakingSuffix))
}

// removePoolWorktree removes the worktree and the branch of a pool entry
// (either may be gone already). The files are removed outside the
// repository's git lock (a pool worktree is a whole checkout): the
// directory is renamed aside and deleted, then git forgets the worktree
// and deletes the branch under the lock.
func (m *Manager) removePoolWorktree(ctx context.Context, e *poolEntry) error {
	trash := e.Path + ".removing"
	if err := os.Rename(e.Path, trash); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove pool worktree: %w", err)
	}
	if err := removeTree(trash); err != nil {
		return fmt.Errorf("remove pool worktree: %w", err)
	}
	rs := m.repo(e.Repo)
	rs.git.Lock()
	defer rs.git.Unlock()
	return errors.Join(
		worktree.Remove(ctx, e.Repo, e.Path, true),
		worktree.DeleteBranch(ctx, e.Repo, e.Branch, true),
	)
}

// removeTree removes p like os.RemoveAll, making directories that were
// copied read-only writable first when that is what stops it.
func removeTree(p string) error {
	if os.RemoveAll(p) == nil {
		return nil
	}
	_ = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(q, 0o700)
		}
		return nil
	})
	return os.RemoveAll(p)
}

// killPoolSetup stops the setup command of pool entry id that a daemon
// left running (see poolSetupSuffix).
func (m *Manager) killPoolSetup(ctx context.Context, id string) {
	m.killRecordedSetup(ctx, m.poolFile(id, poolSetupSuffix), "stopped the setup command of a pool worktree", zap.String("pool", id))
}

// fillPool tops the pool of repo up to [worktree] pool entries, in the
// background, one fill per repository at a time.
func (m *Manager) fillPool(repo string) {
	if m.ctx.Err() != nil {
		return
	}
	cfg, err := config.Load(repo)
	if err != nil || cfg.Worktree.Pool <= 0 {
		return
	}
	m.pool.mu.Lock()
	if m.pool.filling[repo] {
		m.pool.mu.Unlock()
		return
	}
	if f, ok := m.pool.failed[repo]; ok && f.hash == poolHash(repo, cfg) && time.Since(f.at) < poolRetry {
		m.pool.mu.Unlock()
		return
	}
	m.pool.filling[repo] = true
	m.pool.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.loadPool(repo)
		for {
			// The configuration is read again for each entry: a fill
			// under way follows a changed size or setup.
			cfg, err := config.Load(repo)
			want, hash := 0, ""
			if err == nil {
				want, hash = cfg.Worktree.Pool, poolHash(repo, cfg)
			}
			// The decision to stop and the end of the fill are one step,
			// so a claim in between starts a new fill.
			m.pool.mu.Lock()
			n := 0
			for _, e := range m.pool.entries[repo] {
				if e.Hash == hash {
					n++
				}
			}
			if n >= want || m.ctx.Err() != nil {
				m.pool.filling[repo] = false
				m.pool.mu.Unlock()
				return
			}
			m.pool.mu.Unlock()
			e, err := m.makePoolEntry(m.ctx, repo, cfg, hash)
			m.pool.mu.Lock()
			if err != nil {
				m.pool.filling[repo] = false
				if m.ctx.Err() == nil {
					if m.pool.failed == nil {
						m.pool.failed = map[string]poolFailure{}
					}
					m.pool.failed[repo] = poolFailure{hash: hash, err: err.Error(), at: time.Now()}
				}
				m.pool.mu.Unlock()
				if m.ctx.Err() == nil {
					m.log.Warn("fill the worktree pool", zap.String("repo", repo), zap.Error(err))
				}
				return
			}
			delete(m.pool.failed, repo)
			m.pool.entries[repo] = append(m.pool.entries[repo], e)
			m.pool.mu.Unlock()
		}
	}()
}

// makePoolEntry checks out and provisions one pool worktree at the commit
// of the branch agents start from by default. It records the entry as
// making before it creates anything, so that what a crash leaves is found
// and removed by the next daemon.
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
	e := &poolEntry{ID: id, Repo: repo, Path: filepath.Join(filepath.Clean(cfg.WorktreeDir(repo)), ".pool", id), Branch: poolBranchPrefix + id, Commit: commit, Hash: hash}
	if err := os.MkdirAll(filepath.Dir(e.Path), 0o755); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	if err := os.MkdirAll(m.poolDir(), 0o700); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	making := m.poolFile(id, poolMakingSuffix)
	if err := writeJSONAtomic(making, e); err != nil {
		return nil, fmt.Errorf("pool: %w", err)
	}
	rs := m.repo(repo)
	if err := worktree.CreateLocking(ctx, repo, e.Path, e.Branch, commit, &rs.git); err != nil {
		// Create removed what it made. A daemon that is stopping keeps
		// the making record: the next daemon finds the repository's pool
		// through it, sweeps it and fills the pool again.
		if m.ctx.Err() == nil {
			_ = os.Remove(making)
		}
		return nil, err
	}
	fail := func(err error) (*poolEntry, error) {
		if m.ctx.Err() != nil {
			// Stopping: what was half made is left for the next daemon,
			// which removes it and refills the pool at start.
			return nil, err
		}
		m.sweepPoolEntry(context.WithoutCancel(ctx), e)
		return nil, err
	}
	paths := append([]string{}, cfg.Worktree.Copy...)
	include, err := provision.WorktreeInclude(ctx, repo)
	if err != nil {
		return fail(err)
	}
	if paths = append(paths, include...); len(paths) > 0 {
		if _, err := provision.CopyIgnored(ctx, repo, e.Path, paths); err != nil {
			return fail(err)
		}
	}
	if len(cfg.Worktree.Setup) > 0 {
		before, err := worktree.UncommittedFiles(ctx, e.Path)
		if err != nil {
			return fail(err)
		}
		// No agent owns the worktree yet: the developer's own PORT or
		// DATABASE_URL must not reach the setup (a migration would run
		// against their database).
		env := append(daemonEnv(true), "PWD="+e.Path, "BGAGENTS_WORKTREE="+e.Path, "BGAGENTS_MAIN_CHECKOUT="+repo, "BGAGENTS_POOL=1")
		pidFile := m.poolFile(id, poolSetupSuffix)
		err = runSetup(ctx, cfg, e.Path, env, io.Discard, provision.SetupHooks{
			Started: func(pgid int) {
				line := fmt.Sprintf("%d %d\n", pgid, provision.ProcessStartTime(pgid))
				if err := writeFileAtomic(pidFile, []byte(line)); err != nil {
					m.log.Warn("record pool setup pid", zap.String("pool", id), zap.Error(err))
				}
			},
			Ended: func(int) { _ = os.Remove(pidFile) },
		})
		if err != nil {
			return fail(err)
		}
		if _, err := worktree.RecordSetupFiles(ctx, e.Path, before); err != nil {
			return fail(err)
		}
	}
	if err := writeJSONAtomic(m.poolFile(id, poolReadySuffix), e); err != nil {
		return fail(err)
	}
	_ = os.Remove(making)
	return e, nil
}
