package agents

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree"
)

// This file is about landing an agent's work: reviews by a fresh agent,
// pipeline steps, integration of several branches, push and pull requests.

// maxReviewDiff bounds the diff put in a reviewer's prompt.
const maxReviewDiff = 256 << 10

// afterTransition runs the follow-ups of a state change: pipeline steps
// waiting for this agent, the review it is (or needs), and the conflict
// picture of its repository.
func (m *Manager) afterTransition(a *Agent, from State) {
	if from == a.State {
		return
	}
	if a.ReviewOf != "" {
		// Not under the caller's locks: the reviewed agent has its own.
		m.background(func(context.Context) { m.attachReview(a.ID) })
	}
	if a.State.Final() {
		m.background(func(context.Context) { m.schedule(a.Repo) })
	}
	if a.State.Final() || a.State == StateRunning {
		m.conflicts.kick(a.Repo)
	}
	if a.State.Landed() {
		m.background(func(ctx context.Context) { m.cancelReviewers(ctx, a) })
	}
	if a.State == StateSucceeded && a.ReviewOf == "" && !a.ReadOnly && !a.Cleaned && a.Diff.Files > 0 {
		if cfg, err := config.Load(a.Repo); err == nil && cfg.Review.Auto && !reviewedAt(a, a.Head) {
			m.background(func(ctx context.Context) {
				if _, err := m.Review(ctx, a.ID, a.Repo, "", ""); err != nil {
					m.log.Warn("automatic review", zap.String("id", a.ID), zap.Error(err))
					now := time.Now().UTC()
					m.update(a.ID, func(t *Agent) {
						t.Reviews = append(t.Reviews, Review{Head: a.Head, CreatedAt: now, FinishedAt: &now,
							Error: "the automatic review could not start: " + err.Error() + "; set [review] agent to an agent with a read-only mode, or run bgagents review --agent NAME"})
					})
				}
			})
		}
	}
}

// cancelReviewers cancels the reviews still under way of an agent that was
// merged or discarded: there is nothing left for them to judge.
func (m *Manager) cancelReviewers(ctx context.Context, a *Agent) {
	all, err := m.store.List(ctx, a.Repo, nil)
	if err != nil {
		m.log.Warn("list reviewers", zap.String("id", a.ID), zap.Error(err))
		return
	}
	for _, r := range all {
		if r.ReviewOf != a.ID || !r.State.Live() {
			continue
		}
		if _, err := m.Cancel(ctx, r.ID, ""); err != nil && !errors.Is(err, ErrState) {
			m.log.Warn("cancel the review of a landed agent", zap.String("id", r.ID), zap.Error(err))
			continue
		}
		m.log.Info("review cancelled: the reviewed agent was "+string(a.State), zap.String("id", r.ID), zap.String("reviewed", a.ID))
	}
}

// background runs f on a goroutine the manager waits for when it closes.
func (m *Manager) background(f func(ctx context.Context)) {
	if m.ctx.Err() != nil {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f(m.ctx)
	}()
}

func reviewedAt(a *Agent, head string) bool {
	for _, r := range a.Reviews {
		if r.Head == head && r.Error == "" {
			return true
		}
	}
	return false
}

// dependencyReady decides a waiting pipeline step: true when the agent it
// follows succeeded (the step's base commit is then fixed), false while
// that agent works; a dependency that failed fails the step.
func (m *Manager) dependencyReady(a *Agent) bool {
	ctx := context.WithoutCancel(m.ctx)
	dep, err := m.store.Get(ctx, a.After)
	fail := func(reason string) bool {
		_, _ = m.transition(ctx, a.ID, StateFailed, reason, func(a *Agent) {
			a.Error = reason
			now := time.Now().UTC()
			a.FinishedAt = &now
		})
		return false
	}
	switch {
	case err != nil:
		return fail(fmt.Sprintf("the agent it was to follow (%s) is gone", a.After))
	case dep.State == StateSucceeded || (dep.State == StateMerged && dep.Head != ""):
		base, commit := dep.Branch, ""
		if tip, err := worktree.ResolveCommit(ctx, dep.Repo, "refs/heads/"+dep.Branch); err == nil {
			commit = tip
		} else {
			// Merged, or cleaned because it changed nothing: start from
			// where it ended, on the branch it started from.
			base, commit = dep.Base, dep.Head
			if commit == "" {
				commit = dep.BaseCommit
			}
		}
		m.update(a.ID, func(a *Agent) { a.Base, a.BaseCommit = base, commit })
		return true
	case dep.State.Live():
		return false
	default:
		why := string(dep.State)
		if dep.Error != "" {
			why += ": " + dep.Error
		}
		return fail(fmt.Sprintf("the agent it follows, %s, %s", dep.Name, why))
	}
}

// prompt is what the agent is asked: the task with its editor context,
// plus what its kind of run needs (a review's diff, a pipeline step's
// predecessor).
func (m *Manager) prompt(ctx context.Context, a *Agent) (string, error) {
	if a.ReviewOf != "" {
		return m.reviewPrompt(ctx, a)
	}
	p := promptFor(a)
	if a.After != "" {
		dep, err := m.store.Get(ctx, a.After)
		if err != nil {
			return "", fmt.Errorf("the agent this step follows: %w", err)
		}
		var b strings.Builder
		b.WriteString(p)
		fmt.Fprintf(&b, "\n\nThis is the next step after the agent %q, whose work (branch %s) is already checked out here.\nIts task was:\n%s\n", dep.Name, dep.Branch, dep.Task)
		if r := strings.TrimSpace(dep.Result); r != "" {
			fmt.Fprintf(&b, "\nIts result:\n%s\n", r)
		}
		p = b.String()
	}
	return p, nil
}

// Review starts a read-only reviewer agent on the work of agent ref: in a
// fresh context it receives the task, the commit messages and the diff
// against the base, never the writer's conversation. Its verdict is
// attached to the reviewed agent's record when it ends. agentName and
// model default to [review] in config, then to the writer's agent.
func (m *Manager) Review(ctx context.Context, ref, repo, agentName, model string) (*Agent, error) {
	t, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	switch {
	case t.ReviewOf != "":
		return nil, Errorf(ErrInvalid, "agent %s is itself a reviewer; review the agent it reviewed (%s)", t.Name, t.ReviewOf)
	case t.State.Active():
		return nil, Errorf(ErrState, "agent %s is %s; review it once it has finished (bgagents review %s after it ends)", t.Name, t.State, t.Name)
	case t.State.Landed():
		return nil, Errorf(ErrState, "agent %s was already %s; its branch is gone", t.Name, t.State)
	case t.Cleaned:
		return nil, Errorf(ErrState, "agent %s changed nothing; there is nothing to review", t.Name)
	}
	head, err := worktree.ResolveCommit(ctx, t.Repo, "refs/heads/"+t.Branch)
	if err != nil {
		return nil, Errorf(ErrState, "the branch %s of agent %s is gone: %w", t.Branch, t.Name, err)
	}
	if head == t.BaseCommit {
		return nil, Errorf(ErrState, "agent %s has no commits on %s; there is nothing to review", t.Name, t.Branch)
	}
	cfg, err := config.Load(t.Repo)
	if err != nil {
		return nil, Errorf(ErrConfig, "%w", err)
	}
	if agentName == "" {
		agentName = cfg.Review.Agent
	}
	if agentName == "" {
		agentName = t.Agent
	}
	if model == "" && agentName == cfg.Review.Agent {
		model = cfg.Review.Model
	}
	d, err := m.draft(ctx, SpawnRequest{
		Task:  fmt.Sprintf("Review %s: %s", t.Name, firstLine(t.Task)),
		Agent: agentName, Model: model, Repo: t.Repo, Base: head,
		ReadOnly: true, reviewOf: t.ID,
	})
	if err != nil {
		return nil, err
	}
	d.a.Base = t.Branch
	d.stem = "review-" + strings.TrimSuffix(worktree.Slugify(t.Name, 50), "-")
	rev, err := m.record(ctx, d)
	if err != nil {
		return nil, err
	}
	m.update(t.ID, func(t *Agent) {
		if !slices.ContainsFunc(t.Reviews, func(r Review) bool { return r.ID == rev.ID }) {
			t.Reviews = append(t.Reviews, Review{
				ID: rev.ID, Name: rev.Name, Agent: rev.Agent, Model: rev.Model,
				Head: head, State: rev.State, CreatedAt: rev.CreatedAt,
			})
		}
	})
	return rev, nil
}

// reviewPrompt builds a reviewer's prompt from the reviewed agent's task,
// commit messages and diff (the reviewer's base commit is the head it
// reviews).
func (m *Manager) reviewPrompt(ctx context.Context, rev *Agent) (string, error) {
	t, err := m.store.Get(ctx, rev.ReviewOf)
	if err != nil {
		return "", fmt.Errorf("the reviewed agent: %w", err)
	}
	head := rev.BaseCommit
	msgs, err := worktree.CommitMessages(ctx, t.Repo, t.BaseCommit, head)
	if err != nil {
		return "", err
	}
	diff, err := worktree.Diff(ctx, t.Repo, t.BaseCommit, head, false)
	if err != nil {
		return "", err
	}
	if len(diff) > maxReviewDiff {
		diff = diff[:maxReviewDiff] + fmt.Sprintf("\n[diff cut at %d KiB; run `git diff %s %s` in this worktree for the rest]\n", maxReviewDiff>>10, short(t.BaseCommit), short(head))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "You are reviewing a change that another agent made. You did not write it and have not seen how it was written: judge it on its own. "+
		"This worktree has the change checked out (commit %s); read any file you need, but do not modify anything.\n\n", short(head))
	fmt.Fprintf(&b, "The task the change was made for:\n%s\n\n", t.Task)
	if t.Context != nil {
		fmt.Fprintf(&b, "The task's context:\n%s\n\n", strings.TrimPrefix(promptFor(&Agent{Task: "", Context: t.Context}), "\n\n"))
	}
	fmt.Fprintf(&b, "Its commit messages:\n%s\n\n", msgs)
	fmt.Fprintf(&b, "The diff against its base %s (%s):\n```diff\n%s```\n\n", t.Base, short(t.BaseCommit), diff)
	b.WriteString("Check that it does what the task asks, and look for bugs, missing tests, security problems and anything that would break other code. " +
		"End your answer with one JSON object in a ```json fenced block, in exactly this form:\n" +
		"```json\n{\"verdict\": \"approve\" or \"request_changes\" or \"comment\", \"summary\": \"one paragraph\", " +
		"\"findings\": [{\"file\": \"path/in/repo\", \"line\": 12, \"severity\": \"high\" or \"medium\" or \"low\", \"message\": \"what is wrong and how to fix it\"}]}\n```\n")
	return b.String(), nil
}

// attachReview copies a reviewer's current state, and once it ended its
// verdict, into the reviewed agent's record. It reads the reviewer from the
// store, so calls that run late or out of order still leave the latest.
func (m *Manager) attachReview(reviewerID string) {
	rev, err := m.store.Get(context.WithoutCancel(m.ctx), reviewerID)
	if err != nil || rev.ReviewOf == "" {
		return
	}
	m.update(rev.ReviewOf, func(t *Agent) {
		i := slices.IndexFunc(t.Reviews, func(r Review) bool { return r.ID == rev.ID })
		if i < 0 {
			// The reviewer moved before Review added its entry.
			t.Reviews = append(t.Reviews, Review{ID: rev.ID, Name: rev.Name, Agent: rev.Agent, Model: rev.Model, Head: rev.BaseCommit, CreatedAt: rev.CreatedAt})
			i = len(t.Reviews) - 1
		}
		r := &t.Reviews[i]
		r.State = rev.State
		if rev.State.Live() && rev.State != StateNeedsInput {
			return
		}
		r.FinishedAt = rev.FinishedAt
		switch rev.State {
		case StateSucceeded:
			r.Verdict, r.Summary, r.Findings = ParseReview(rev.Result)
			r.Error = ""
		case StateNeedsInput:
			r.Error = "the reviewer stopped with a question: " + rev.Error
		case StateDiscarded, StateMerged:
			if r.Verdict == "" && r.Error == "" {
				r.Error = "the reviewer was " + string(rev.State) + " before it gave a verdict"
			}
		default:
			r.Error = "the reviewer " + string(rev.State)
			if rev.Error != "" {
				r.Error += ": " + rev.Error
			}
		}
	})
}

var (
	jsonFence    = regexp.MustCompile("(?s)```(?:json)?\\s*(\\{.*?\\})\\s*```")
	verdictLine  = regexp.MustCompile(`(?im)^\W*verdict\W*:?\W*(approve[ds]?|request[_ -]changes|comment)\b`)
	findingShape = regexp.MustCompile(`^(?:[-*]\s+)?([^\s:]+):(\d+):\s*(.+)$`)
)

// ParseReview reads a reviewer's final answer: the JSON object it was
// asked to end with, else a "VERDICT: …" line and "- path:line: message"
// findings, else the whole answer as a comment.
func ParseReview(text string) (verdict, summary string, findings []Finding) {
	text = strings.TrimSpace(text)
	ms := jsonFence.FindAllStringSubmatch(text, -1)
	for i := len(ms) - 1; i >= 0; i-- {
		var v struct {
			Verdict  string          `json:"verdict"`
			Summary  string          `json:"summary"`
			Findings json.RawMessage `json:"findings"`
		}
		if json.Unmarshal([]byte(ms[i][1]), &v) != nil || v.Verdict == "" {
			continue
		}
		var fs []struct {
			File     string          `json:"file"`
			Line     json.RawMessage `json:"line"`
			Severity string          `json:"severity"`
			Message  string          `json:"message"`
		}
		_ = json.Unmarshal(v.Findings, &fs)
		for _, f := range fs {
			if strings.TrimSpace(f.Message) == "" {
				continue
			}
			line, _ := strconv.Atoi(strings.Trim(string(f.Line), `"`))
			findings = append(findings, Finding{File: f.File, Line: line, Severity: normSeverity(f.Severity), Message: strings.TrimSpace(f.Message)})
		}
		return normVerdict(v.Verdict), strings.TrimSpace(v.Summary), findings
	}
	verdict = VerdictComment
	if m := verdictLine.FindStringSubmatch(text); m != nil {
		verdict = normVerdict(m[1])
	}
	for _, line := range strings.Split(text, "\n") {
		if m := findingShape.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			n, _ := strconv.Atoi(m[2])
			findings = append(findings, Finding{File: m[1], Line: n, Message: m[3]})
		}
	}
	summary = text
	if len(summary) > 2000 {
		summary = summary[:2000] + "…"
	}
	return verdict, summary, findings
}

func normVerdict(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	switch {
	case strings.HasPrefix(v, "approve"), v == "lgtm", v == "accept":
		return VerdictApprove
	case strings.HasPrefix(v, "request"), v == "reject", v == "changes_requested":
		return VerdictRequestChanges
	}
	return VerdictComment
}

func normSeverity(s string) string {
	switch s = strings.ToLower(strings.TrimSpace(s)); s {
	case "critical", "blocker", "high", "error":
		return "high"
	case "major", "medium", "warning":
		return "medium"
	case "":
		return ""
	}
	return "low"
}

// Integrate starts an integration agent: a branch from the first agent's
// base that merges the branches of every agent named (conflict markers
// committed where they collide), and an agent asked to resolve the
// conflicts and make the combination work. req carries the task (a
// default one is written when empty), agent, model and name.
func (m *Manager) Integrate(ctx context.Context, refs []string, req SpawnRequest) (*Agent, error) {
	if len(refs) < 2 {
		return nil, Errorf(ErrInvalid, "integrate needs at least two agents")
	}
	var parts []*Agent
	seen := map[string]bool{}
	for _, ref := range refs {
		a, err := m.Resolve(ctx, ref, req.Repo)
		if err != nil {
			return nil, err
		}
		if seen[a.ID] {
			continue
		}
		seen[a.ID] = true
		switch {
		case a.State.Active():
			return nil, Errorf(ErrState, "agent %s is %s; integrate it once it has finished", a.Name, a.State)
		case a.State.Landed():
			return nil, Errorf(ErrState, "agent %s was already %s; its branch is gone", a.Name, a.State)
		case a.Cleaned:
			return nil, Errorf(ErrState, "agent %s changed nothing; leave it out", a.Name)
		case a.ReadOnly:
			return nil, Errorf(ErrInvalid, "agent %s is read-only (a reviewer); it has no changes to integrate", a.Name)
		}
		if len(parts) > 0 && a.Repo != parts[0].Repo {
			return nil, Errorf(ErrInvalid, "agents %s and %s belong to different repositories", parts[0].Name, a.Name)
		}
		if ok, err := worktree.BranchExists(ctx, a.Repo, a.Branch); err != nil || !ok {
			return nil, Errorf(ErrState, "the branch %s of agent %s is gone", a.Branch, a.Name)
		}
		parts = append(parts, a)
	}
	if len(parts) < 2 {
		return nil, Errorf(ErrInvalid, "integrate needs at least two different agents")
	}
	names := make([]string, len(parts))
	for i, a := range parts {
		names[i] = a.Name
		req.integrates = append(req.integrates, a.ID)
	}
	req.Repo = parts[0].Repo
	if req.Base == "" {
		req.Base = parts[0].Base
	}
	if strings.TrimSpace(req.Task) == "" {
		req.Task = fmt.Sprintf("Integrate the work of %s: their branches are merged here; resolve the conflicts so that the intent of every change is kept, and make sure the result builds and its tests pass.", strings.Join(names, ", "))
	}
	req.After, req.Variants, req.Agents = "", 0, nil
	d, err := m.draft(ctx, req)
	if err != nil {
		return nil, err
	}
	if req.Name == "" {
		d.stem = "integrate-" + strings.TrimSuffix(worktree.Slugify(parts[0].Name, 40), "-")
	}
	return m.record(ctx, d)
}

// integrateBranches merges an integration agent's branches into its fresh
// worktree and returns what its prompt should add: the branches and the
// files left with conflict markers.
func (m *Manager) integrateBranches(ctx context.Context, a *Agent) (string, error) {
	var b strings.Builder
	b.WriteString("\n\nThis branch already merges these agents' branches, in this order:\n")
	conflicted := map[string]bool{}
	var files []string
	for _, id := range a.Integrates {
		p, err := m.store.Get(ctx, id)
		if err != nil {
			return "", fmt.Errorf("agent %s: %w", id, err)
		}
		fs, err := worktree.MergeInto(ctx, a.Worktree, p.Branch, fmt.Sprintf("Merge %s (agent %s): %s", p.Branch, p.Name, firstLine(p.Task)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "- %s (agent %s): %s\n", p.Branch, p.Name, firstLine(p.Task))
		for _, f := range fs {
			if !conflicted[f] {
				conflicted[f] = true
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 {
		b.WriteString("They merged without textual conflicts; check that the combined changes work together.\n")
	} else {
		fmt.Fprintf(&b, "The merges left conflict markers (<<<<<<< ======= >>>>>>>) in: %s. Resolve every one so that each change's intent is kept, and remove the markers.\n", strings.Join(files, ", "))
	}
	return b.String(), nil
}

// PushOptions tunes Push and PullRequest.
type PushOptions struct {
	// Remote defaults to [push] remote, then "origin".
	Remote string
	// Base is the pull request's base branch; default: the agent's base.
	Base string
	// Title defaults to the task's first line.
	Title string
	// Draft opens a draft pull request (also [push] draft).
	Draft bool
}

// Push pushes the agent's branch (with any edits made in its worktree
// after the run committed first) to the remote.
func (m *Manager) Push(ctx context.Context, ref, repo string, opt PushOptions) (*Agent, error) {
	a, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	unlock := m.lockAgent(a.ID)
	defer unlock()
	return m.pushLocked(ctx, a.ID, opt)
}

func (m *Manager) pushLocked(ctx context.Context, id string, opt PushOptions) (*Agent, error) {
	a, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	switch {
	case a.State.Active():
		return nil, Errorf(ErrState, "agent %s is %s; push it once it has finished", a.Name, a.State)
	case a.State.Landed():
		return nil, Errorf(ErrState, "agent %s was already %s; its branch is gone", a.Name, a.State)
	case a.Cleaned:
		return nil, Errorf(ErrState, "agent %s changed nothing; there is nothing to push", a.Name)
	}
	cfg, err := config.Load(a.Repo)
	if err != nil {
		return nil, Errorf(ErrConfig, "%w", err)
	}
	remote := opt.Remote
	if remote == "" {
		remote = cfg.PushRemote()
	}
	if _, err := worktree.RemoteURL(ctx, a.Repo, remote); err != nil {
		return nil, Errorf(ErrInvalid, "cannot push agent %s: %w", a.Name, err)
	}
	rs := m.repo(a.Repo)
	rs.git.Lock()
	if _, err := os.Stat(a.Worktree); err == nil {
		if _, err := worktree.CommitAll(ctx, a.Worktree, fmt.Sprintf("%s (edits after the run)", firstLine(a.Task))); err != nil {
			rs.git.Unlock()
			return nil, fmt.Errorf("push %s: commit worktree changes: %w", a.Name, err)
		}
	}
	rs.git.Unlock()
	sha, err := worktree.Push(ctx, a.Repo, remote, a.Branch)
	if err != nil {
		if strings.Contains(err.Error(), "was rejected") {
			return nil, Errorf(ErrExternal, "pushing agent %s failed: %w", a.Name, err)
		}
		return nil, Errorf(ErrExternal, "pushing agent %s failed: %w; check that the remote is reachable and that you may push to it", a.Name, err)
	}
	a.Pushed = &Push{Remote: remote, Branch: a.Branch, Commit: sha, At: time.Now().UTC()}
	a.UpdatedAt = a.Pushed.At
	if err := m.store.Put(ctx, a); err != nil {
		return nil, err
	}
	m.publishAgent(a)
	m.log.Info("pushed", zap.String("id", a.ID), zap.String("remote", remote), zap.String("commit", sha))
	return a.Clone(), nil
}

// ghURL finds a pull request URL in gh's output.
var ghURL = regexp.MustCompile(`https?://\S+/pull/\d+`)

// PullRequest pushes the agent's branch and opens a pull request for it
// with the GitHub CLI, described by the task, the agent's summary and its
// latest review. When one is already open for the branch, its URL is
// recorded instead.
func (m *Manager) PullRequest(ctx context.Context, ref, repo string, opt PushOptions) (*Agent, error) {
	a, err := m.Resolve(ctx, ref, repo)
	if err != nil {
		return nil, err
	}
	if opt.Base != "" {
		if err := worktree.ValidateBranchName(opt.Base); err != nil {
			return nil, Errorf(ErrInvalid, "pull request base: %w", err)
		}
	}
	gh, err := exec.LookPath("gh")
	if err != nil {
		return nil, Errorf(ErrExternal, "the GitHub CLI (gh) is not installed, so no pull request can be opened: install it (https://cli.github.com) and run `gh auth login`, or run `bgagents push %s` and open the pull request on your forge", a.Name)
	}
	cfg, err := config.Load(a.Repo)
	if err != nil {
		return nil, Errorf(ErrConfig, "%w", err)
	}
	// gh talks to the network: the agent stays unlocked while it does, so
	// a slow GitHub never blocks the agent's other operations.
	if out, err := runGH(ctx, gh, a.Repo, nil, "auth", "status"); err != nil {
		return nil, Errorf(ErrExternal, "gh is not logged in: run `gh auth login` and try again (gh said: %s)", firstLine(out))
	}
	unlock := m.lockAgent(a.ID)
	a, err = m.pushLocked(ctx, a.ID, opt)
	unlock()
	if err != nil {
		return nil, err
	}
	title := opt.Title
	if title == "" {
		title = firstLine(a.Task)
	}
	args := []string{"pr", "create", "--head", m.prHead(ctx, gh, a), "--title", title, "--body-file", "-"}
	base := opt.Base
	if base == "" {
		if ok, _ := worktree.BranchExists(ctx, a.Repo, a.Base); ok {
			base = a.Base
		}
	}
	if base != "" {
		args = append(args, "--base", base)
	}
	if opt.Draft || cfg.Push.Draft {
		args = append(args, "--draft")
	}
	out, err := runGH(ctx, gh, a.Repo, strings.NewReader(prBody(a)), args...)
	url := ghURL.FindString(out)
	if err != nil && (url == "" || !strings.Contains(out, "already exists")) {
		return nil, Errorf(ErrExternal, "gh could not open the pull request: %s", strings.TrimSpace(out))
	}
	if url == "" {
		return nil, Errorf(ErrExternal, "gh printed no pull request URL: %s", strings.TrimSpace(out))
	}
	unlock = m.lockAgent(a.ID)
	defer unlock()
	if a, err = m.store.Get(ctx, a.ID); err != nil {
		return nil, err
	}
	a.PullRequest = url
	a.UpdatedAt = time.Now().UTC()
	if err := m.store.Put(ctx, a); err != nil {
		return nil, err
	}
	m.publishAgent(a)
	m.log.Info("pull request", zap.String("id", a.ID), zap.String("url", url))
	return a.Clone(), nil
}

// prHead is the --head gh is given: the branch, or owner:branch when it was
// pushed to a fork (a GitHub remote whose owner is not the owner of the
// repository gh opens the pull request on).
func (m *Manager) prHead(ctx context.Context, gh string, a *Agent) string {
	if a.Pushed == nil {
		return a.Branch
	}
	url, err := worktree.RemoteURL(ctx, a.Repo, a.Pushed.Remote)
	if err != nil {
		return a.Branch
	}
	owner := remoteOwner(url)
	if owner == "" {
		return a.Branch
	}
	out, err := runGH(ctx, gh, a.Repo, nil, "repo", "view", "--json", "owner", "--jq", ".owner.login")
	base := strings.TrimSpace(out)
	if err != nil || !ghLogin.MatchString(base) || strings.EqualFold(base, owner) {
		return a.Branch
	}
	return owner + ":" + a.Branch
}

// ghLogin matches a GitHub user or organisation name.
var ghLogin = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)

// remoteOwner is the owner in a GitHub remote URL (https://github.com/OWNER/REPO,
// git@github.com:OWNER/REPO.git, ssh://git@github.com/OWNER/REPO), or "" for
// anything else.
func remoteOwner(url string) string {
	rest := url
	if i := strings.Index(rest, "://"); i >= 0 {
		rest = rest[i+3:]
	} else if i := strings.Index(rest, ":"); i >= 0 && !strings.Contains(rest[:i], "/") {
		rest = rest[:i] + "/" + rest[i+1:]
	} else {
		return ""
	}
	if i := strings.LastIndex(rest[:max(strings.Index(rest, "/"), 0)], "@"); i >= 0 {
		rest = rest[i+1:]
	}
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(rest, "/"), ".git"), "/")
	if len(parts) != 3 || !strings.EqualFold(strings.Split(parts[0], ":")[0], "github.com") || !ghLogin.MatchString(parts[1]) {
		return ""
	}
	return parts[1]
}

// runGH runs gh without a shell or prompts and returns its combined
// output.
func runGH(ctx context.Context, gh, dir string, stdin *strings.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, gh, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GH_PROMPT_DISABLED=1", "GH_NO_UPDATE_NOTIFIER=1", "NO_COLOR=1")
	if stdin != nil {
		cmd.Stdin = stdin
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("gh timed out: %w", err)
	}
	return out.String(), err
}

// prBody describes a pull request: the task, the agent's summary and its
// latest review.
func prBody(a *Agent) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## Task\n\n%s\n", a.Task)
	if r := strings.TrimSpace(a.Result); r != "" {
		fmt.Fprintf(&b, "\n## Summary\n\n%s\n", r)
	}
	if n := len(a.Reviews); n > 0 {
		r := a.Reviews[n-1]
		switch {
		case r.Verdict != "":
			fmt.Fprintf(&b, "\n## Review (%s, %s)\n\n**%s**", r.Agent, short(r.Head), strings.ReplaceAll(r.Verdict, "_", " "))
			if r.Summary != "" {
				fmt.Fprintf(&b, ": %s", r.Summary)
			}
			b.WriteString("\n")
			for _, f := range r.Findings {
				loc := f.File
				if f.Line > 0 {
					loc += ":" + strconv.Itoa(f.Line)
				}
				if loc != "" {
					loc = "`" + loc + "` "
				}
				sev := ""
				if f.Severity != "" {
					sev = "(" + f.Severity + ") "
				}
				fmt.Fprintf(&b, "- %s%s%s\n", sev, loc, f.Message)
			}
		case r.Error != "":
			fmt.Fprintf(&b, "\n## Review\n\nNo verdict: %s\n", r.Error)
		}
	}
	model := a.Agent
	if a.Model != "" {
		model += ", " + a.Model
	}
	fmt.Fprintf(&b, "\n---\nMade by the background agent %s (%s) with bgagents.\n", a.Name, model)
	return b.String()
}
