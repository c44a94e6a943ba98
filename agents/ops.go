package agents

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree"
)

// Resolve finds an agent by full id, unique id prefix or name; repo (may be
// empty) is preferred when names repeat across repositories.
func (m *Manager) Resolve(ctx context.Context, ref, repo string) (*Agent, error) {
	a, err := m.store.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	return a, nil
}

// List returns the agents of repo ("" for all), newest first, optionally
// only those in the given states.
func (m *Manager) List(ctx context.Context, repo string, states []State) ([]*Agent, error) {
	for _, s := range states {
		if !s.Valid() {
			return nil, Errorf(ErrInvalid, "unknown state %q (known: queued, provisioning, running, needs_input, succeeded, failed, cancelled, merged, discarded, lost)", s)
		}
	}
	return m.store.List(ctx, repo, states)
}

// Cancel stops an agent: a queued one never starts, a running one gets
// SIGTERM to its process group and SIGKILL after the grace period. It
// returns once the agent has reached its final state or ctx ends.
func (m *Manager) Cancel(ctx context.Context, ref, repo string) (*Agent, error) {
	a, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	switch a.State {
	case StateQueued, StateNeedsInput:
		m.mu.Lock()
		r := m.runs[a.ID]
		if r != nil {
			r.cancelRequested = true
		}
		m.mu.Unlock()
		if r == nil {
			return m.transition(ctx, a.ID, StateCancelled, "cancelled", func(a *Agent) {
				now := time.Now().UTC()
				a.FinishedAt = &now
				a.Error = "cancelled"
			})
		}
	case StateProvisioning, StateRunning:
	default:
		return nil, Errorf(ErrState, "agent %s has already ended (%s); nothing to cancel", a.Name, a.State)
	}
	m.mu.Lock()
	r := m.runs[a.ID]
	if r == nil {
		m.mu.Unlock()
		return m.store.Get(ctx, a.ID)
	}
	r.cancelRequested = true
	pid := r.shimPID
	if r.provCancel != nil && pid == 0 {
		// Still preparing: stop the step under way (the setup command's
		// process group is killed); provisioning then ends as cancelled.
		r.provCancel()
	}
	m.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		// If the shim itself cannot stop the agent, the daemon does.
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			t := time.NewTimer(m.opts.Grace + 5*time.Second)
			defer t.Stop()
			select {
			case <-r.done:
			case <-m.ctx.Done():
			case <-t.C:
				m.log.Warn("shim did not stop the agent; killing it", zap.String("id", a.ID))
				killAgentGroup(m.agentDir(a.ID), a.ID)
				if isShimFor(pid, m.agentDir(a.ID)) {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}()
	}
	select {
	case <-r.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("cancel %s: %w", a.Name, ctx.Err())
	}
	return m.store.Get(ctx, a.ID)
}

// Message continues an agent with a follow-up from the user: the vendor's
// session is resumed (or, for agents without sessions, the command runs
// again with the message) in the same worktree, and the agent is running
// again. allowDenied allows, for this run, the tools the agent was refused.
func (m *Manager) Message(ctx context.Context, ref, repo, text string, allowDenied bool) (*Agent, error) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, Errorf(ErrInvalid, "the message is empty: say what the agent should do next")
	}
	a, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	unlock := m.lockAgent(a.ID)
	if a, err = m.store.Get(ctx, a.ID); err != nil {
		unlock()
		return nil, err
	}
	switch a.State {
	case StateNeedsInput, StateSucceeded, StateFailed:
	case StateQueued, StateProvisioning, StateRunning:
		unlock()
		return nil, Errorf(ErrState, "agent %s is %s; send the message when it has stopped (or cancel it)", a.Name, a.State)
	default:
		unlock()
		return nil, Errorf(ErrState, "agent %s is %s; it cannot be continued", a.Name, a.State)
	}
	if a.Cleaned {
		unlock()
		return nil, Errorf(ErrState, "agent %s changed nothing and its worktree was removed; spawn a new agent instead", a.Name)
	}
	if _, err := os.Stat(a.Worktree); err != nil {
		unlock()
		return nil, Errorf(ErrState, "the worktree %s of agent %s is missing; spawn a new agent instead", a.Worktree, a.Name)
	}
	if a.BudgetUSD > 0 && a.Usage.CostUSD >= a.BudgetUSD || a.BudgetTokens > 0 && a.Usage.InputTokens+a.Usage.OutputTokens >= a.BudgetTokens {
		unlock()
		return nil, Errorf(ErrRefused, "agent %s has used its budget ($%.4f, %d tokens); merge or discard it, or spawn a new agent with a larger budget", a.Name, a.Usage.CostUSD, a.Usage.InputTokens+a.Usage.OutputTokens)
	}
	cfg, err := config.Load(a.Repo)
	if err != nil {
		unlock()
		return nil, Errorf(ErrConfig, "%w", err)
	}
	spec, err := cfg.Spec(a.Agent)
	if err != nil {
		unlock()
		return nil, Errorf(ErrConfig, "%w", err)
	}
	prov, err := providers.Get(spec.Provider)
	if err != nil {
		unlock()
		return nil, Errorf(ErrConfig, "%w", err)
	}
	task := providers.Task{
		ID: a.ID, Prompt: text, Worktree: a.Worktree, Branch: a.Branch, Base: a.Base,
		Model: a.Model, MaxTurns: a.MaxTurns, ReadOnly: a.ReadOnly,
	}
	if prov.CanResume() && a.SessionID != "" {
		task.Resume = a.SessionID
	}
	if allowDenied {
		seen := map[string]bool{}
		for _, q := range a.Questions {
			if q.Tool != "" && !seen[q.Tool] {
				seen[q.Tool] = true
				task.AllowTools = append(task.AllowTools, q.Tool)
			}
		}
	}
	argv, env, err := prov.Command(spec, task)
	if err != nil {
		unlock()
		if errors.Is(err, providers.ErrNotInstalled) {
			return nil, Errorf(ErrUnavailable, "agent %q cannot run: %w", a.Agent, err)
		}
		return nil, Errorf(ErrConfig, "%w", err)
	}
	r := m.newRun(a)
	if task.Resume != "" {
		r.resumed = true
		if rp, ok := prov.(providers.ResumedParserMaker); ok {
			r.parser = rp.NewResumedParser(a.Usage)
			r.configureParser(a)
		}
	}
	m.mu.Lock()
	if m.runs[a.ID] != nil {
		m.mu.Unlock()
		unlock()
		return nil, Errorf(ErrState, "agent %s is already running", a.Name)
	}
	if active, limit := m.repoLocked(a.Repo).active, cfg.MaxConcurrent(); active >= limit {
		m.mu.Unlock()
		unlock()
		return nil, Errorf(ErrRefused, "%d agents already run in %s (max_concurrent = %d); send the message when one of them has finished", active, a.Repo, limit)
	}
	m.runs[a.ID] = r
	m.repoLocked(a.Repo).active++
	m.mu.Unlock()
	unlock()
	m.appendOnce(a.ID, Event{Time: time.Now().UTC(), Kind: providers.KindMessage, Text: text})
	if err := m.launch(r, a, argv, env, a.Runs+1); err != nil {
		m.endRun(r)
		return nil, fmt.Errorf("continue %s: %w", a.Name, err)
	}
	return m.store.Get(ctx, a.ID)
}

// Wait blocks until agent id is no longer live or ctx ends.
func (m *Manager) Wait(ctx context.Context, id string) (*Agent, error) {
	sub := m.bus.Subscribe()
	defer sub.Close()
	a, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	for a.State.Active() {
		ns, ok := sub.Next(ctx)
		if !ok {
			return nil, ctx.Err()
		}
		for _, n := range ns {
			if n.Agent != nil && n.Agent.ID == id {
				a = n.Agent
			}
		}
	}
	return a, nil
}

// MaxLogEvents caps how many events one log request returns.
const MaxLogEvents = 5000

// Log returns events of agent id with seq >= from (at most MaxLogEvents).
// When follow is given it is called, under the lock that orders the event
// log and before any later event is published, with the sequence number
// of the first event the caller has not got: a follower that forwards only
// published events from there on sees every event exactly once.
func (m *Manager) Log(ctx context.Context, id string, from int64, follow func(next int64)) ([]Event, error) {
	m.evMu.Lock()
	defer m.evMu.Unlock()
	evs, err := readEvents(m.agentDir(id), from, MaxLogEvents)
	if err != nil {
		return nil, err
	}
	if follow != nil {
		next := from
		if len(evs) > 0 {
			next = evs[len(evs)-1].Seq + 1
		}
		follow(next)
	}
	return evs, nil
}

// DiffView is an agent's changes against its base commit.
type DiffView struct {
	// Head is the branch tip (or, once landed, the commit it had).
	Head string
	// Uncommitted is set when the worktree still exists and has changes
	// not yet committed; Text, Stat and Files then compare the base with
	// the worktree's content (what the run would commit), not with Head.
	Uncommitted bool
	Text        string
	Stat        DiffStat
	Files       []worktree.FileChange
}

// Diff returns the agent's changes against its base commit: the patch (or
// a --stat summary when stat is set), the numbers and the changed files.
// While the worktree exists, uncommitted and untracked changes are
// included, without touching the worktree or its index.
func (m *Manager) Diff(ctx context.Context, a *Agent, stat bool) (DiffView, error) {
	v := DiffView{Stat: a.Diff}
	ref := a.Branch
	if a.State.Landed() || a.Cleaned {
		if a.Head == "" || a.Cleaned {
			return v, nil
		}
		ref = a.Head
	} else if ok, err := worktree.BranchExists(ctx, a.Repo, a.Branch); err == nil && !ok {
		return v, Errorf(ErrState, "the branch %s of agent %s no longer exists", a.Branch, a.Name)
	}
	head, err := worktree.ResolveCommit(ctx, a.Repo, ref)
	if err != nil {
		return v, fmt.Errorf("diff %s: %w", a.Name, err)
	}
	v.Head = head
	target := head
	if !a.State.Landed() && a.Worktree != "" {
		if _, err := os.Stat(a.Worktree); err == nil {
			tree, dirty, err := worktree.Snapshot(ctx, a.Worktree)
			if err != nil {
				return v, fmt.Errorf("diff %s: %w", a.Name, err)
			}
			if dirty {
				target, v.Uncommitted = tree, true
			}
		}
	}
	if v.Text, err = worktree.Diff(ctx, a.Repo, a.BaseCommit, target, stat); err != nil {
		return v, fmt.Errorf("diff %s: %w", a.Name, err)
	}
	st, err := worktree.Stat(ctx, a.Repo, a.BaseCommit, head)
	if err != nil {
		return v, fmt.Errorf("diff %s: %w", a.Name, err)
	}
	if v.Uncommitted {
		commits := st.Commits
		if st, err = worktree.TreeStat(ctx, a.Repo, a.BaseCommit, target); err != nil {
			return v, fmt.Errorf("diff %s: %w", a.Name, err)
		}
		st.Commits = commits
	}
	v.Stat = DiffStat{Commits: st.Commits, Files: st.Files, Additions: st.Additions, Deletions: st.Deletions}
	if v.Files, err = worktree.ChangedFiles(ctx, a.Repo, a.BaseCommit, target); err != nil {
		return v, fmt.Errorf("diff %s: %w", a.Name, err)
	}
	return v, nil
}

// Merge lands the agent's branch in its base branch (a merge commit, or one
// squashed commit) and then removes its worktree and branch. It never
// touches uncommitted work of the checkout that has the base checked out:
// it refuses instead.
//
// into names the branch to land in; empty means the agent's base when it
// is a branch, else the branch checked out in the main checkout.
func (m *Manager) Merge(ctx context.Context, ref, repo string, squash bool, into string) (*Agent, error) {
	a, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	unlock := m.lockAgent(a.ID)
	defer unlock()
	if a, err = m.store.Get(ctx, a.ID); err != nil {
		return nil, err
	}
	switch {
	case a.State.Live() && a.State != StateNeedsInput:
		return nil, Errorf(ErrState, "agent %s is %s; wait for it to finish or cancel it before merging", a.Name, a.State)
	case a.State.Landed():
		return nil, Errorf(ErrState, "agent %s was already %s", a.Name, a.State)
	case a.Cleaned:
		return nil, Errorf(ErrState, "agent %s changed nothing; there is nothing to merge (use rm to clear it)", a.Name)
	}
	target := into
	if target == "" {
		target = a.Base
		if ok, err := worktree.BranchExists(ctx, a.Repo, target); err != nil || !ok {
			// A tag or commit base: land in what the main checkout has out.
			cur, err := worktree.CurrentBranch(ctx, a.Repo)
			if err != nil {
				return nil, Errorf(ErrState, "the base %q of agent %s is not a branch and the main checkout has no branch checked out; merge with --into BRANCH", a.Base, a.Name)
			}
			target = cur
		}
	}
	if err := worktree.ValidateBranchName(target); err != nil {
		return nil, Errorf(ErrInvalid, "merge target: %w", err)
	}
	if ok, err := worktree.BranchExists(ctx, a.Repo, target); err != nil || !ok {
		return nil, Errorf(ErrInvalid, "there is no local branch %q to merge agent %s into", target, a.Name)
	}
	rs := m.repo(a.Repo)
	rs.git.Lock()
	gl := &gitUnlocker{rs: rs}
	defer gl.unlock()
	// Refuse before changing anything when the checkout that has the
	// target out is dirty.
	if wt, err := worktree.CheckedOutIn(ctx, a.Repo, target); err == nil && wt != "" {
		if files, err := worktree.DirtyFiles(ctx, wt); err == nil && len(files) > 0 {
			return nil, Errorf(ErrRefused, "the checkout at %s has uncommitted changes (%s); commit or stash them, then merge again", wt, summarize(files))
		}
	}
	// Edits made in the worktree after the run land too.
	if _, err := os.Stat(a.Worktree); err == nil {
		if _, err := worktree.CommitAll(ctx, a.Worktree, fmt.Sprintf("%s (edits after the run)", firstLine(a.Task))); err != nil {
			return nil, fmt.Errorf("merge %s: commit worktree changes: %w", a.Name, err)
		}
	}
	stat, err := worktree.Stat(ctx, a.Repo, a.BaseCommit, a.Branch)
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", a.Name, err)
	}
	head, err := worktree.ResolveCommit(ctx, a.Repo, a.Branch)
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", a.Name, err)
	}
	msg := fmt.Sprintf("Merge %s into %s: %s\n\n%s\n", a.Branch, target, firstLine(a.Task), a.Task)
	if squash {
		msg = fmt.Sprintf("%s\n\nSquashed from %s (bgagents agent %s).\n\n%s\n", firstLine(a.Task), a.Branch, a.ID, a.Task)
	}
	newBase, err := worktree.Merge(ctx, a.Repo, target, a.Branch, worktree.MergeOptions{Squash: squash, Message: msg})
	if err != nil {
		var ce *worktree.ConflictError
		var de *worktree.DirtyError
		switch {
		case errors.As(err, &ce):
			return nil, Errorf(ErrConflict, "%s; resolve it in the worktree %s (merge %s there and commit), then merge again", ce.Error(), a.Worktree, a.Base)
		case errors.As(err, &de):
			return nil, Errorf(ErrRefused, "%s", de.Error())
		}
		return nil, fmt.Errorf("merge %s: %w", a.Name, err)
	}
	m.log.Info("merged", zap.String("id", a.ID), zap.String("into", target), zap.String("commit", newBase))
	reason := fmt.Sprintf("merged into %s as %s", target, short(newBase))
	released := false
	err = m.removeWorktreeLocked(ctx, a, true)
	gl.unlock()
	if err == nil {
		err = m.releaseOrRecord(ctx, a)
	}
	if err != nil {
		// The merge happened: it is recorded, and what could not be
		// cleaned up is named (rm cleans up later).
		m.log.Warn("clean up after merge", zap.String("id", a.ID), zap.Error(err))
		reason += "; warning: " + err.Error()
	} else {
		released = true
	}
	return m.transitionLocked(ctx, a.ID, StateMerged, reason, func(a *Agent) {
		a.Head = head
		a.Diff = DiffStat{Commits: stat.Commits, Files: stat.Files, Additions: stat.Additions, Deletions: stat.Deletions}
		if released {
			clearResources(a)
		}
	})
}

// Discard throws an agent's work away: its worktree and branch are removed.
// Uncommitted changes or commits not in the base are only thrown away with
// force; a live agent only with force (it is cancelled first).
func (m *Manager) Discard(ctx context.Context, ref, repo string, force bool) (*Agent, error) {
	a, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	if (a.State.Landed() || a.Cleaned) && m.hasPendingRelease(a.ID) {
		// Its worktree is gone; what is left is what could not be
		// released then (a database copy).
		if a, err = m.retryPendingRelease(ctx, a.ID); err != nil || a.State.Landed() {
			return a, err
		}
	}
	if a.State.Landed() {
		return nil, Errorf(ErrState, "agent %s was already %s", a.Name, a.State)
	}
	if a.State.Live() && a.State != StateNeedsInput {
		if !force {
			return nil, Errorf(ErrRefused, "agent %s is %s; cancel it first, or discard with --force to cancel and discard it", a.Name, a.State)
		}
		if _, err := m.Cancel(ctx, a.ID, ""); err != nil && !errors.Is(err, ErrState) {
			return nil, err
		}
	}
	unlock := m.lockAgent(a.ID)
	defer unlock()
	if a, err = m.store.Get(ctx, a.ID); err != nil {
		return nil, err
	}
	rs := m.repo(a.Repo)
	rs.git.Lock()
	gl := &gitUnlocker{rs: rs}
	defer gl.unlock()
	if !force {
		if _, err := os.Stat(a.Worktree); err == nil {
			files, err := worktree.DirtyFiles(ctx, a.Worktree)
			if err != nil {
				return nil, fmt.Errorf("discard %s: %w", a.Name, err)
			}
			if len(files) > 0 {
				return nil, Errorf(ErrRefused, "agent %s has uncommitted changes in %s (%s); merge them, or discard with --force to lose them", a.Name, a.Worktree, summarize(files))
			}
		}
		if ok, _ := worktree.BranchExists(ctx, a.Repo, a.Branch); ok {
			target := a.Base
			if ok, _ := worktree.BranchExists(ctx, a.Repo, target); !ok {
				target = a.BaseCommit
			}
			n, err := worktree.Ahead(ctx, a.Repo, target, a.Branch)
			if err != nil {
				return nil, fmt.Errorf("discard %s: %w", a.Name, err)
			}
			if n > 0 {
				return nil, Errorf(ErrRefused, "agent %s has %d commit(s) on %s not merged into %s; merge them, or discard with --force to lose them", a.Name, n, a.Branch, a.Base)
			}
		}
	}
	reason := "discarded"
	released := true
	err = m.removeWorktreeLocked(ctx, a, force)
	gl.unlock()
	if err == nil {
		err = m.releaseOrRecord(ctx, a)
	}
	if err != nil {
		var pending *ReleasePendingError
		if !errors.As(err, &pending) {
			return nil, fmt.Errorf("discard %s: %w", a.Name, err)
		}
		// The worktree and branch are gone (with or without --force, the
		// work checks passed): the agent is discarded, and what could not
		// be released is recorded, named, and retried later.
		reason += "; warning: " + err.Error()
		released = false
	}
	return m.transitionLocked(ctx, a.ID, StateDiscarded, reason, func(a *Agent) {
		if released {
			clearResources(a)
		}
	})
}

// retryPendingRelease releases what an earlier removal of agent id left.
func (m *Manager) retryPendingRelease(ctx context.Context, id string) (*Agent, error) {
	unlock := m.lockAgent(id)
	defer unlock()
	a, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := m.retryPendingReleaseLocked(ctx, a); err != nil {
		return nil, fmt.Errorf("discard %s: %w", a.Name, err)
	}
	return a, nil
}

// removeWorktreeLocked removes the agent's worktree and branch; the
// repository's git lock must be held. Its resources outside the worktree
// (ports, database copy) are released by the caller with releaseOrRecord
// once the lock is let go, so a slow database server never holds up the
// repository's other git operations.
func (m *Manager) removeWorktreeLocked(ctx context.Context, a *Agent, force bool) error {
	if a.Worktree != "" {
		if err := worktree.Remove(ctx, a.Repo, a.Worktree, force); err != nil {
			return err
		}
	}
	if a.Branch != "" {
		if err := worktree.DeleteBranch(ctx, a.Repo, a.Branch, true); err != nil {
			return err
		}
	}
	return nil
}

// gitUnlocker lets the repository's git lock go early, once: a deferred
// call after an early one does nothing.
type gitUnlocker struct {
	rs   *repoState
	done bool
}

func (u *gitUnlocker) unlock() {
	if !u.done {
		u.done = true
		u.rs.git.Unlock()
	}
}

// releaseWorktree removes what provisioning made, after a failure. When
// only the release fails, the worktree and branch are gone, what is left
// is recorded for a later retry, and the error is a *ReleasePendingError.
func (m *Manager) releaseWorktree(ctx context.Context, a *Agent) error {
	rs := m.repo(a.Repo)
	rs.git.Lock()
	err := m.removeWorktreeLocked(ctx, a, true)
	rs.git.Unlock()
	if err == nil {
		err = m.releaseOrRecord(ctx, a)
	}
	if err != nil {
		m.log.Warn("release worktree", zap.String("id", a.ID), zap.Error(err))
	}
	return err
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			s = s[:i]
			break
		}
	}
	if len(s) > 72 {
		s = s[:69] + "..."
	}
	return s
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func summarize(files []string) string {
	if len(files) <= 5 {
		return fmt.Sprint(files)
	}
	return fmt.Sprintf("%v and %d more", files[:5], len(files)-5)
}

// waitPID blocks until pid (not necessarily a child) has exited or ctx ends.
func waitPID(ctx context.Context, pid int) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		// No pidfd (old kernel) or already gone: poll.
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for pidAlive(pid) {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
		return
	}
	defer unix.Close(fd)
	for ctx.Err() == nil {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 500)
		if err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if n > 0 {
			return
		}
	}
}
