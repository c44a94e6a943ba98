package agents

import (
	"context"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/bgagents/bgagents/worktree"
)

// conflictTracker keeps every agent's Conflicts current: for each agent
// whose branch has not landed, which other such agents (landing in the
// same base) and whether the base branch itself would conflict with it,
// computed with `git merge-tree --write-tree` (no worktree touched). It
// recomputes a repository when its branches move (a watch on its refs) or
// when an agent of it changes state; results are cached per commit pair.
type conflictTracker struct {
	m       *Manager
	watcher *fsnotify.Watcher
	kicks   chan struct{}

	mu      sync.Mutex
	pending map[string]bool         // repos kicked since the loop last looked
	repos   map[string]*trackedRepo // by main checkout
	dirs    map[string]string       // watched directory → main checkout
	cache   map[[2]string][]string  // sorted commit pair → conflicting files
}

type trackedRepo struct {
	common  string // git common dir
	watched map[string]bool
}

// debounce gathers the ref updates of one git command (lock, rename,
// reflog) into one refresh.
const debounce = 150 * time.Millisecond

func newConflictTracker(m *Manager) *conflictTracker {
	t := &conflictTracker{
		m:       m,
		kicks:   make(chan struct{}, 1),
		pending: map[string]bool{},
		repos:   map[string]*trackedRepo{},
		dirs:    map[string]string{},
		cache:   map[[2]string][]string{},
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		m.log.Warn("conflict tracking without a ref watch: branches moved outside bgagents are seen at the next state change", zap.Error(err))
	}
	t.watcher = w
	m.wg.Add(1)
	go t.loop()
	return t
}

// kick asks for repo to be recomputed soon.
func (t *conflictTracker) kick(repo string) {
	t.mu.Lock()
	t.pending[repo] = true
	t.mu.Unlock()
	select {
	case t.kicks <- struct{}{}:
	default: // a wake-up is already queued; it takes every pending repo
	}
}

func (t *conflictTracker) loop() {
	defer t.m.wg.Done()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if t.watcher != nil {
		defer t.watcher.Close()
		events, errs = t.watcher.Events, t.watcher.Errors
	}
	due := map[string]bool{}
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	arm := func(repo string) {
		if len(due) == 0 {
			timer.Reset(debounce)
		}
		due[repo] = true
	}
	for {
		select {
		case <-t.m.ctx.Done():
			return
		case <-t.kicks:
			t.mu.Lock()
			for repo := range t.pending {
				arm(repo)
			}
			clear(t.pending)
			t.mu.Unlock()
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if repo := t.repoOfEvent(ev); repo != "" {
				arm(repo)
			}
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			t.m.log.Warn("ref watch", zap.Error(err))
		case <-timer.C:
			repos := make([]string, 0, len(due))
			for r := range due {
				repos = append(repos, r)
			}
			clear(due)
			for _, r := range repos {
				t.refresh(t.m.ctx, r)
			}
		}
	}
}

// repoOfEvent maps a ref change to its repository; other files under the
// watched directories (lock files, the index beside packed-refs) are
// ignored.
func (t *conflictTracker) repoOfEvent(ev fsnotify.Event) string {
	name := filepath.Base(ev.Name)
	if strings.HasSuffix(name, ".lock") {
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	dir := filepath.Dir(ev.Name)
	repo := t.dirs[dir]
	if repo == "" {
		return ""
	}
	if tr := t.repos[repo]; tr != nil && dir == tr.common && name != "packed-refs" {
		return ""
	}
	return repo
}

// watch makes sure the refs of repo's branches in use are watched.
func (t *conflictTracker) watch(ctx context.Context, repo string, branches []string) {
	if t.watcher == nil {
		return
	}
	t.mu.Lock()
	tr := t.repos[repo]
	t.mu.Unlock()
	if tr == nil {
		common, err := worktree.Git(ctx, repo, "rev-parse", "--path-format=absolute", "--git-common-dir")
		if err != nil {
			return
		}
		tr = &trackedRepo{common: filepath.Clean(common), watched: map[string]bool{}}
	}
	want := []string{tr.common, filepath.Join(tr.common, "refs", "heads")}
	for _, b := range branches {
		if d := filepath.Dir(b); d != "." {
			want = append(want, filepath.Join(tr.common, "refs", "heads", filepath.FromSlash(d)))
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.repos[repo] = tr
	for _, d := range want {
		if tr.watched[d] {
			continue
		}
		if err := t.watcher.Add(d); err != nil {
			continue // not there yet (no branch below it): the next refresh retries
		}
		tr.watched[d] = true
		t.dirs[d] = repo
	}
}

// unwatch drops the watches of a repository without unlanded agents.
func (t *conflictTracker) unwatch(repo string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr := t.repos[repo]
	if tr == nil {
		return
	}
	for d := range tr.watched {
		if t.watcher != nil {
			_ = t.watcher.Remove(d)
		}
		delete(t.dirs, d)
	}
	delete(t.repos, repo)
}

// tracked reports whether an agent's branch takes part: it has (or may
// soon have) commits and has not landed. Reviewers change nothing.
func tracked(a *Agent) bool {
	return !a.State.Landed() && !a.Cleaned && !a.ReadOnly && a.BaseCommit != "" &&
		a.State != StateQueued && a.State != StateProvisioning
}

// refresh recomputes the conflicts of every agent of repo and publishes
// the records whose conflicts changed.
func (t *conflictTracker) refresh(ctx context.Context, repo string) {
	all, err := t.m.store.List(ctx, repo, nil)
	if err != nil {
		t.m.log.Warn("conflicts: list agents", zap.String("repo", repo), zap.Error(err))
		return
	}
	var live []*Agent
	var branches []string
	for _, a := range all {
		if tracked(a) {
			live = append(live, a)
			branches = append(branches, a.Branch, a.Base)
		} else if len(a.Conflicts) > 0 {
			t.m.update(a.ID, func(a *Agent) { a.Conflicts = nil })
		}
	}
	if len(live) == 0 {
		t.unwatch(repo)
		return
	}
	t.watch(ctx, repo, branches)
	tips, err := worktree.BranchTips(ctx, repo)
	if err != nil {
		t.m.log.Warn("conflicts: branch tips", zap.String("repo", repo), zap.Error(err))
		return
	}
	for _, a := range live {
		var cs []Conflict
		// An agent without commits has nothing to conflict with yet.
		if tip := tips[a.Branch]; tip != "" && tip != a.BaseCommit {
			if bt := tips[a.Base]; bt != "" && bt != a.BaseCommit {
				if files := t.pair(ctx, repo, bt, tip); len(files) > 0 {
					cs = append(cs, Conflict{Base: a.Base, Files: files})
				}
			}
			mine := t.changed(ctx, repo, a.BaseCommit, tip)
			for _, b := range live {
				tb := tips[b.Branch]
				if b.ID == a.ID || b.Base != a.Base || tb == "" || tb == b.BaseCommit {
					continue
				}
				// Only files both agents changed: when their bases differ,
				// the base's own changes must not count as the other's.
				theirs := t.changed(ctx, repo, b.BaseCommit, tb)
				var files []string
				for _, f := range t.pair(ctx, repo, tip, tb) {
					if mine[f] && theirs[f] {
						files = append(files, f)
					}
				}
				if len(files) > 0 {
					cs = append(cs, Conflict{Agent: b.ID, Name: b.Name, Files: files})
				}
			}
		}
		sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
		if !reflect.DeepEqual(cs, a.Conflicts) && !(len(cs) == 0 && len(a.Conflicts) == 0) {
			t.m.update(a.ID, func(a *Agent) {
				if !a.State.Landed() {
					a.Conflicts = cs
				}
			})
		}
	}
}

// changed returns the paths changed between base and tip (old and new
// names of renames).
func (t *conflictTracker) changed(ctx context.Context, repo, base, tip string) map[string]bool {
	key := [2]string{"changed " + base, tip}
	t.mu.Lock()
	files, ok := t.cache[key]
	t.mu.Unlock()
	if !ok {
		fcs, err := worktree.ChangedFiles(ctx, repo, base, tip)
		if err != nil {
			return nil
		}
		files = []string{}
		for _, f := range fcs {
			files = append(files, f.Path)
			if f.OldPath != "" {
				files = append(files, f.OldPath)
			}
		}
		t.mu.Lock()
		t.cache[key] = files
		t.mu.Unlock()
	}
	set := make(map[string]bool, len(files))
	for _, f := range files {
		set[f] = true
	}
	return set
}

// pair returns the files that conflict when commits x and y are merged.
func (t *conflictTracker) pair(ctx context.Context, repo, x, y string) []string {
	if x == y {
		return nil
	}
	key := [2]string{x, y}
	if y < x {
		key = [2]string{y, x}
	}
	t.mu.Lock()
	files, ok := t.cache[key]
	t.mu.Unlock()
	if ok {
		return files
	}
	files, err := worktree.Conflicts(ctx, repo, key[0], key[1])
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		t.m.log.Warn("conflicts: merge-tree", zap.String("repo", repo), zap.Error(err))
		return nil
	}
	if files == nil {
		files = []string{}
	}
	t.mu.Lock()
	if len(t.cache) > 20000 {
		clear(t.cache)
	}
	t.cache[key] = files
	t.mu.Unlock()
	return files
}
