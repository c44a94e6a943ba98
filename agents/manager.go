package agents

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"

	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree"
)

// Options configures a Manager.
type Options struct {
	// Home is the daemon's state directory: the store and one directory
	// per agent live below it.
	Home string
	// Shim is the command that runs the shim; "shim" and the agent's state
	// directory are appended. Usually the bgagents binary itself.
	Shim []string
	// Grace is how long a cancelled agent has between SIGTERM and SIGKILL.
	Grace time.Duration
	// Logger receives the daemon's log; nil means no logging.
	Logger *zap.Logger
}

// SpawnRequest is what a client asks for.
type SpawnRequest struct {
	Task    string
	Name    string
	Agent   string
	Model   string
	Repo    string
	Base    string
	Timeout time.Duration
	Context *Context
	// Limits (0: from config).
	MaxTurns     int
	BudgetUSD    float64
	BudgetTokens int64
	ReadOnly     bool
	// After makes the agent a pipeline step: it waits until that agent
	// succeeded and then starts on its branch, with its result in the
	// prompt.
	After string
	// Variants starts that many agents on the same task (a fan-out);
	// Agents, when given, are the configured agents they take in turn.
	Variants int
	Agents   []string

	// set by Review and Integrate
	reviewOf   string
	integrates []string
}

// MaxVariants bounds a fan-out.
const MaxVariants = 10

// Manager supervises every agent of every repository: it owns the store,
// the queue, the shims and the event bus.
type Manager struct {
	opts    Options
	log     *zap.Logger
	store   *Store
	bus     *Bus
	watcher *fsnotify.Watcher
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	// guards runs, repos, reserved and agentLocks
	mu         sync.Mutex
	runs       map[string]*run
	repos      map[string]*repoState
	reserved   map[string]bool // repo+"\x00"+name being created
	agentLocks map[string]*sync.Mutex

	// serialises port allocation with its lease
	portMu sync.Mutex

	pool warmPool

	conflicts *conflictTracker

	// guards every agent's event log: appends and the publishing of the
	// appended events happen under it, so a follower that reads the log and
	// subscribes under it sees every event exactly once.
	evMu sync.Mutex
}

// repoState is what the manager keeps per repository.
type repoState struct {
	git    sync.Mutex // serialises git calls that take the repository's locks
	active int        // provisioning or running agents (guarded by Manager.mu)
}

// run is one agent process under supervision.
type run struct {
	id     string
	repo   string
	dir    string
	parser providers.Parser
	wake   chan struct{}
	done   chan struct{} // closed when the run has been finalised
	ctx    context.Context
	cancel context.CancelFunc

	// guarded by Manager.mu
	cancelRequested bool
	provCancel      context.CancelFunc // ends provisioning (nil once the shim starts)
	shimPID         int
	cmd             *exec.Cmd

	// tail state, used only by the run's tail goroutine
	log     *eventLog
	readOff [2]int64 // how far stdout.log and stderr.log were read
	partial [2][]byte
	lastOut string
	lastErr string
	result  string
	usage   providers.Usage // this run's usage
	// what earlier runs of the agent used (follow-ups add to it)
	baseUsage providers.Usage
	baseTurns int
	// vendor facts from the events
	sessionID   string
	turns       int // this run's turns: the vendor's count, else tool calls
	toolCalls   int
	questions   []Question
	errorKind   string
	resultError bool
	// limits
	maxTurns     int // counted by the daemon (vendor has no flag); 0 = none
	budgetUSD    float64
	budgetTokens int64
	price        *config.Price
	prices       *config.Config // for a price by the model the CLI reports
	spec         providers.Spec // the agent as configured when the run began
	limitReason  string         // set when a limit stopped the agent
	stallAfter   time.Duration
	lastOutput   time.Time
	stalled      bool
	// what the record last showed while running
	shownUsage   providers.Usage
	shownTurns   int
	shownSession string
	shownAt      time.Time
	resumed      bool // this run continues the vendor session
}

// NewManager opens the store under opts.Home. Call Start to re-adopt agents
// and begin scheduling.
func NewManager(ctx context.Context, opts Options) (*Manager, error) {
	if opts.Home == "" {
		return nil, errors.New("manager: no home directory")
	}
	if len(opts.Shim) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("manager: find own executable for the shim: %w", err)
		}
		opts.Shim = []string{exe}
	}
	if opts.Grace <= 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	if err := os.MkdirAll(filepath.Join(opts.Home, "agents"), 0o700); err != nil {
		return nil, fmt.Errorf("manager: %w", err)
	}
	store, err := OpenStore(ctx, filepath.Join(opts.Home, "bgagents.db"))
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("manager: watch output files: %w", err)
	}
	mctx, stop := context.WithCancel(context.Background())
	m := &Manager{
		opts: opts, log: opts.Logger, store: store, bus: NewBus(), watcher: w,
		ctx: mctx, stop: stop,
		runs: map[string]*run{}, repos: map[string]*repoState{}, reserved: map[string]bool{},
		agentLocks: map[string]*sync.Mutex{},
		pool:       warmPool{entries: map[string][]*poolEntry{}, filling: map[string]bool{}, loaded: map[string]bool{}},
	}
	m.wg.Add(1)
	go m.dispatchWatch()
	m.conflicts = newConflictTracker(m)
	return m, nil
}

// Bus returns the manager's event bus.
func (m *Manager) Bus() *Bus { return m.bus }

// Store returns the manager's store.
func (m *Manager) Store() *Store { return m.store }

// Close stops supervising. Agents keep running; a new manager re-adopts them.
func (m *Manager) Close() error {
	m.stop()
	m.watcher.Close()
	m.wg.Wait()
	m.mu.Lock()
	runs := make([]*run, 0, len(m.runs))
	for _, r := range m.runs {
		runs = append(runs, r)
	}
	m.mu.Unlock()
	m.evMu.Lock()
	for _, r := range runs {
		if r.log != nil {
			_ = r.log.close()
			r.log = nil
		}
	}
	m.evMu.Unlock()
	return m.store.Close()
}

func (m *Manager) agentDir(id string) string { return filepath.Join(m.opts.Home, "agents", id) }

func (m *Manager) repo(path string) *repoState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.repoLocked(path)
}

func (m *Manager) repoLocked(path string) *repoState {
	r := m.repos[path]
	if r == nil {
		r = &repoState{}
		m.repos[path] = r
	}
	return r
}

// lockAgent serialises operations (merge, discard, finalise) on one agent.
func (m *Manager) lockAgent(id string) func() {
	m.mu.Lock()
	l := m.agentLocks[id]
	if l == nil {
		l = &sync.Mutex{}
		m.agentLocks[id] = l
	}
	m.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func newID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// Start re-adopts the agents a previous daemon left and starts queued ones.
// Loading the store has no side effects; this is the explicit step.
func (m *Manager) Start(ctx context.Context) error {
	live, err := m.store.List(ctx, "", []State{StateQueued, StateProvisioning, StateRunning})
	if err != nil {
		return err
	}
	// Resources earlier removals could not release (a database server
	// that was down) are tried again.
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.retryPendingReleases(m.ctx)
	}()
	repos := map[string]bool{}
	for _, a := range live {
		repos[a.Repo] = true
		switch a.State {
		case StateProvisioning:
			m.reprovision(ctx, a)
		case StateRunning:
			m.adopt(ctx, a)
		}
	}
	for repo := range repos {
		m.schedule(repo)
	}
	// Branches may have moved while no daemon watched them.
	done, err := m.store.List(ctx, "", []State{StateSucceeded, StateFailed, StateCancelled, StateNeedsInput, StateLost, StateRunning})
	if err != nil {
		return err
	}
	for _, a := range done {
		if !repos[a.Repo] {
			repos[a.Repo] = true
		}
	}
	for repo := range repos {
		m.conflicts.kick(repo)
	}
	// Warm pools a previous daemon left: swept and refilled now.
	m.startPools()
	return nil
}

// reprovision puts an agent whose worktree was being prepared when the
// daemon died back in the queue, removing what was half made.
func (m *Manager) reprovision(ctx context.Context, a *Agent) {
	dir := m.agentDir(a.ID)
	if shim := readPID(filepath.Join(dir, shimPIDFile)); shim > 0 {
		// The shim had started: it runs, it ran to the end (status.json),
		// or it is lost. In every case the worktree may hold the agent's
		// work and is kept; supervision finds out which.
		now := time.Now().UTC()
		a, err := m.transition(ctx, a.ID, StateRunning, "agent started (re-adopted)", func(a *Agent) {
			a.ShimPID = shim
			if a.StartedAt == nil {
				a.StartedAt = &now
			}
		})
		if err == nil {
			m.adopt(ctx, a)
		}
		return
	}
	// A setup command the previous daemon started may still run: it would
	// write into the worktree made next.
	m.killSetup(ctx, a.ID)
	rs := m.repo(a.Repo)
	rs.git.Lock()
	if a.Worktree != "" {
		_ = worktree.Remove(ctx, a.Repo, a.Worktree, true)
	}
	if a.Branch != "" {
		_ = worktree.DeleteBranch(ctx, a.Repo, a.Branch, true)
	}
	rs.git.Unlock()
	// The port lease and the database copy are made again too. A copy
	// that cannot be dropped would make the next attempt fail (its name is
	// the agent's own), so the agent fails now, naming it.
	if err := m.releaseOrRecord(ctx, a); err != nil {
		msg := "daemon restarted while preparing the worktree: " + err.Error()
		_, _ = m.transition(ctx, a.ID, StateFailed, msg, func(a *Agent) {
			a.Error = msg
			now := time.Now().UTC()
			a.FinishedAt = &now
		})
		return
	}
	_, _ = m.transition(ctx, a.ID, StateQueued, "daemon restarted while preparing the worktree", clearResources)
}

// adopt takes over supervising an agent whose shim a previous daemon
// started.
func (m *Manager) adopt(ctx context.Context, a *Agent) {
	dir := m.agentDir(a.ID)
	r := m.newRun(a)
	m.mu.Lock()
	m.runs[a.ID] = r
	m.repoLocked(a.Repo).active++
	r.shimPID = a.ShimPID
	m.mu.Unlock()
	if a.ShimPID > 0 && pidAlive(a.ShimPID) && isShimFor(a.ShimPID, dir) {
		m.log.Info("re-adopted agent", zap.String("id", a.ID), zap.Int("shim", a.ShimPID))
		m.supervise(r, a.ShimPID)
		return
	}
	// The shim is gone: finalise from its status file, or as lost.
	m.supervise(r, 0)
}

func (m *Manager) newRun(a *Agent) *run {
	ctx, cancel := context.WithCancel(m.ctx)
	p, err := providers.Get(a.Provider)
	if err != nil {
		p, _ = providers.Get("command")
	}
	r := &run{
		id: a.ID, repo: a.Repo, dir: m.agentDir(a.ID), parser: p.NewParser(),
		wake: make(chan struct{}, 1), done: make(chan struct{}), ctx: ctx, cancel: cancel,
		baseUsage: a.Usage, baseTurns: a.Turns, budgetUSD: a.BudgetUSD, budgetTokens: a.BudgetTokens,
		sessionID: a.SessionID, lastOutput: time.Now(), stallAfter: config.DefaultStallTimeout,
	}
	if !providers.LimitsTurns(p) {
		r.maxTurns = a.MaxTurns
	}
	// A run already under way (re-adoption): its base and parser come from
	// what it was started with, not from the live record.
	if a.State == StateRunning {
		var spec RunSpec
		if readJSON(filepath.Join(r.dir, specFile), &spec) == nil {
			r.baseUsage, r.baseTurns = spec.BaseUsage, spec.BaseTurns
			r.resumed = spec.Resumed
		}
		// What this run reported before the daemon stopped (questions,
		// usage, turns, session, result) is rebuilt from its events.
		r.replay()
		if rp, ok := p.(providers.ResumedParserMaker); ok && (r.resumed || r.usage != (providers.Usage{})) {
			prior := r.baseUsage
			prior.Add(r.usage)
			r.parser = rp.NewResumedParser(prior)
			r.configureParser(a)
		}
	}
	if cfg, err := config.Load(a.Repo); err == nil {
		r.prices = cfg
		r.price = cfg.PriceFor(a.Model)
		r.stallAfter = cfg.StallTimeout()
		if spec, err := cfg.Spec(a.Agent); err == nil {
			r.spec = spec
		}
	}
	r.configureParser(a)
	return r
}

// Spawn validates a request, records the agent as queued and schedules it.
// It returns at once; the worktree is prepared in the background. A
// request for several variants returns the first; see SpawnGroup.
func (m *Manager) Spawn(ctx context.Context, req SpawnRequest) (*Agent, error) {
	as, err := m.SpawnGroup(ctx, req)
	if err != nil {
		return nil, err
	}
	return as[0], nil
}

// SpawnGroup spawns the agents of a request: one, or req.Variants (a
// fan-out sharing a group id), taking req.Agents in turn. Every variant is
// validated before any is recorded.
func (m *Manager) SpawnGroup(ctx context.Context, req SpawnRequest) ([]*Agent, error) {
	if req.Variants < 0 || req.Variants > MaxVariants {
		return nil, Errorf(ErrInvalid, "variants must be between 1 and %d", MaxVariants)
	}
	if req.Agent != "" && len(req.Agents) > 0 {
		return nil, Errorf(ErrInvalid, "give either agent or agents, not both")
	}
	if req.Variants > 0 && len(req.Agents) > req.Variants {
		return nil, Errorf(ErrInvalid, "%d agents given for %d variants; give at most one agent per variant", len(req.Agents), req.Variants)
	}
	names := req.Agents
	if req.Agent != "" {
		names = []string{req.Agent}
	}
	n := req.Variants
	if n == 0 {
		n = max(1, len(names))
	}
	if n > 1 && (req.reviewOf != "" || len(req.integrates) > 0) {
		return nil, Errorf(ErrInvalid, "reviews and integrations run one agent")
	}
	drafts := make([]*draft, n)
	for i := range drafts {
		r := req
		r.Agent = ""
		if len(names) > 0 {
			r.Agent = names[i%len(names)]
		}
		d, err := m.draft(ctx, r)
		if err != nil {
			if n > 1 {
				return nil, fmt.Errorf("variant %d: %w", i+1, err)
			}
			return nil, err
		}
		drafts[i] = d
	}
	group := ""
	if n > 1 {
		group = newID()[:8]
	}
	for i, d := range drafts {
		if n > 1 {
			d.a.Group, d.a.Variant = group, i+1
			d.stem = fmt.Sprintf("%s-v%d", strings.TrimSuffix(worktree.Slugify(d.stem, 60), "-"), i+1)
		}
	}
	return m.recordAll(ctx, drafts)
}

// draft is a validated agent record before it has a name.
type draft struct {
	a     *Agent
	stem  string
	exact bool // stem was given as the name
	wtDir string
}

// draft validates a request and builds the record of one agent.
func (m *Manager) draft(ctx context.Context, req SpawnRequest) (*draft, error) {
	task := strings.TrimSpace(req.Task)
	if task == "" {
		return nil, Errorf(ErrInvalid, "task is empty: say what the agent should do")
	}
	if req.Repo == "" {
		return nil, Errorf(ErrInvalid, "repo is empty: give the path of a git repository")
	}
	if !filepath.IsAbs(req.Repo) {
		return nil, Errorf(ErrInvalid, "repo %q must be an absolute path", req.Repo)
	}
	repo, err := worktree.RepoRoot(ctx, req.Repo)
	if err != nil {
		return nil, Errorf(ErrNotRepo, "%s is not inside a git repository: %w", req.Repo, err)
	}
	cfg, err := config.Load(repo)
	if err != nil {
		return nil, Errorf(ErrConfig, "%w", err)
	}
	agentName := req.Agent
	if agentName == "" {
		agentName = cfg.DefaultAgent()
	}
	spec, err := cfg.Spec(agentName)
	if err != nil {
		return nil, Errorf(ErrInvalid, "%w", err)
	}
	prov, err := providers.Get(spec.Provider)
	if err != nil {
		return nil, Errorf(ErrConfig, "%w", err)
	}
	model := req.Model
	if model == "" {
		model = spec.Model
	}
	if model == "" {
		model = cfg.Defaults.Model
	}
	// A missing CLI fails the spawn now, not later in the background.
	if _, _, err := prov.Command(spec, providers.Task{Prompt: task, Worktree: repo, Model: model, ReadOnly: req.ReadOnly}); err != nil {
		if errors.Is(err, providers.ErrNotInstalled) {
			return nil, Errorf(ErrUnavailable, "agent %q cannot run: %w", agentName, err)
		}
		return nil, Errorf(ErrConfig, "%w", err)
	}
	base, baseCommit, after := req.Base, "", ""
	if req.After != "" {
		if base != "" {
			return nil, Errorf(ErrInvalid, "after and base cannot be combined: a pipeline step starts on the branch of the agent it follows")
		}
		dep, err := m.Resolve(ctx, req.After, repo)
		if err != nil {
			return nil, err
		}
		if dep.Repo != repo {
			return nil, Errorf(ErrInvalid, "agent %s belongs to %s, not %s", dep.Name, dep.Repo, repo)
		}
		switch {
		case dep.State.Landed():
			return nil, Errorf(ErrState, "agent %s was already %s; spawn on its base instead of after it", dep.Name, dep.State)
		case dep.State == StateFailed || dep.State == StateCancelled || dep.State == StateLost:
			return nil, Errorf(ErrState, "agent %s %s, so a step after it would never start; send it a follow-up or spawn without after", dep.Name, dep.State)
		}
		// The commit is fixed when the dependency succeeds.
		base, after = dep.Branch, dep.ID
	} else {
		if base == "" {
			base = cfg.Defaults.Base
		}
		if base == "" {
			if base, err = worktree.CurrentBranch(ctx, repo); err != nil {
				return nil, Errorf(ErrInvalid, "%w", err)
			}
		}
		if strings.HasPrefix(base, "-") {
			return nil, Errorf(ErrInvalid, "base %q must not start with '-'", base)
		}
		if baseCommit, err = worktree.ResolveCommit(ctx, repo, base); err != nil {
			return nil, Errorf(ErrInvalid, "base %q: %w", base, err)
		}
	}
	timeout := req.Timeout
	if timeout == 0 {
		timeout = time.Duration(cfg.Defaults.Timeout)
	}
	if timeout < 0 {
		return nil, Errorf(ErrInvalid, "timeout must not be negative")
	}
	if req.MaxTurns < 0 || req.BudgetUSD < 0 || req.BudgetTokens < 0 {
		return nil, Errorf(ErrInvalid, "maxTurns, budgetUsd and budgetTokens must not be negative")
	}
	if (req.BudgetUSD > 0 || req.BudgetTokens > 0) && !providers.ReportsUsage(prov) {
		return nil, Errorf(ErrInvalid, "agent %q (%s) reports no token usage, so a budget cannot be enforced; use a timeout instead", agentName, spec.Provider)
	}
	maxTurns := firstNonZero(req.MaxTurns, spec.MaxTurns, cfg.Defaults.MaxTurns)
	budgetUSD := req.BudgetUSD
	if budgetUSD == 0 {
		budgetUSD = cfg.Defaults.BudgetUSD
	}
	budgetTokens := req.BudgetTokens
	if budgetTokens == 0 {
		budgetTokens = cfg.Defaults.BudgetTokens
	}
	stem := req.Name
	if stem != "" {
		if err := validAgentName(stem); err != nil {
			return nil, Errorf(ErrInvalid, "%w", err)
		}
	} else {
		stem = worktree.Slugify(task, 40)
	}
	a := &Agent{
		Task: task, Context: req.Context,
		Agent: agentName, Provider: spec.Provider, Model: model,
		Repo: repo, Base: base, BaseCommit: baseCommit, State: StateQueued,
		Timeout:  Duration(timeout),
		MaxTurns: maxTurns, BudgetUSD: budgetUSD, BudgetTokens: budgetTokens, ReadOnly: req.ReadOnly,
		After: after, ReviewOf: req.reviewOf, Integrates: req.integrates,
	}
	return &draft{a: a, stem: stem, exact: req.Name != "", wtDir: cfg.WorktreeDir(repo)}, nil
}

// record names a drafted agent, stores it as queued and schedules it.
func (m *Manager) record(ctx context.Context, d *draft) (*Agent, error) {
	out, err := m.recordAll(ctx, []*draft{d})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// recordAll names the drafts and stores them in one transaction, so a
// group of variants is recorded whole or not at all; then they are
// announced and scheduled.
func (m *Manager) recordAll(ctx context.Context, ds []*draft) ([]*Agent, error) {
	keys := make([]string, 0, len(ds))
	defer func() {
		m.mu.Lock()
		for _, k := range keys {
			delete(m.reserved, k)
		}
		m.mu.Unlock()
	}()
	now := time.Now().UTC()
	recs := make([]*Agent, len(ds))
	m.mu.Lock()
	for i, d := range ds {
		a, repo := d.a, d.a.Repo
		name, err := m.uniqueNameLocked(ctx, repo, d.stem, d.wtDir, d.exact)
		if err != nil {
			m.mu.Unlock()
			return nil, err
		}
		key := repo + "\x00" + name
		m.reserved[key] = true
		keys = append(keys, key)
		a.ID, a.Name = newID(), name
		a.Worktree, a.Branch = filepath.Join(d.wtDir, name), "bgagents/"+name
		a.CreatedAt, a.UpdatedAt = now, now
		recs[i] = a
	}
	m.mu.Unlock()

	for _, a := range recs {
		if err := os.MkdirAll(m.agentDir(a.ID), 0o700); err != nil {
			m.removeStateDirs(recs)
			return nil, fmt.Errorf("spawn: state directory: %w", err)
		}
	}
	if err := m.store.PutNew(ctx, recs, "spawned"); err != nil {
		m.removeStateDirs(recs)
		return nil, err
	}
	out := make([]*Agent, len(recs))
	repos := map[string]bool{}
	for i, a := range recs {
		m.publishAgent(a)
		m.log.Info("spawned", zap.String("id", a.ID), zap.String("name", a.Name), zap.String("repo", a.Repo))
		out[i] = a.Clone()
		repos[a.Repo] = true
	}
	for repo := range repos {
		m.schedule(repo)
		m.fillPool(repo)
	}
	return out, nil
}

// removeStateDirs removes the state directories of agents that were never
// recorded.
func (m *Manager) removeStateDirs(recs []*Agent) {
	for _, a := range recs {
		if err := os.RemoveAll(m.agentDir(a.ID)); err != nil {
			m.log.Warn("remove state directory", zap.String("id", a.ID), zap.Error(err))
		}
	}
}

func firstNonZero(vs ...int) int {
	for _, v := range vs {
		if v != 0 {
			return v
		}
	}
	return 0
}

func validAgentName(name string) error {
	if len(name) > 64 {
		return fmt.Errorf("name %q is longer than 64 characters", name)
	}
	if worktree.Slugify(name, 64) != name {
		return fmt.Errorf("name %q may only contain lower-case letters, digits and single '-' between them (try %q)", name, worktree.Slugify(name, 64))
	}
	return nil
}

// uniqueNameLocked picks stem, or stem-2, stem-3 …, unused in the store, by
// a spawn in flight, as a branch and as a directory. Exact names (--name)
// must be free as given.
func (m *Manager) uniqueNameLocked(ctx context.Context, repo, stem, wtDir string, exact bool) (string, error) {
	for i := 1; i < 1000; i++ {
		name := stem
		if i > 1 {
			name = fmt.Sprintf("%s-%d", stem, i)
		}
		free, err := m.nameFreeLocked(ctx, repo, name, wtDir)
		if err != nil {
			return "", err
		}
		if free {
			return name, nil
		}
		if exact {
			return "", Errorf(ErrInvalid, "the name %q is already used by an agent, a branch bgagents/%s or the directory %s; choose another --name", name, name, filepath.Join(wtDir, name))
		}
	}
	return "", Errorf(ErrInvalid, "no free name for %q", stem)
}

func (m *Manager) nameFreeLocked(ctx context.Context, repo, name, wtDir string) (bool, error) {
	if m.reserved[repo+"\x00"+name] {
		return false, nil
	}
	taken, err := m.store.NameTaken(ctx, repo, name)
	if err != nil || taken {
		return false, err
	}
	exists, err := worktree.BranchExists(ctx, repo, "bgagents/"+name)
	if err != nil || exists {
		return false, err
	}
	if _, err := os.Lstat(filepath.Join(wtDir, name)); err == nil {
		return false, nil
	}
	return true, nil
}

// schedule starts queued agents of repo, oldest first, while the
// repository is under its concurrency limit.
func (m *Manager) schedule(repo string) {
	if m.ctx.Err() != nil {
		return
	}
	limit := config.DefaultMaxConcurrent
	if cfg, err := config.Load(repo); err == nil {
		limit = cfg.MaxConcurrent()
	}
	queued, err := m.store.List(m.ctx, repo, []State{StateQueued})
	if err != nil {
		m.log.Error("schedule", zap.Error(err))
		return
	}
	waiting := map[string]bool{}
	for _, a := range queued {
		if a.After != "" && a.BaseCommit == "" && !m.dependencyReady(a) {
			waiting[a.ID] = true
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rs := m.repoLocked(repo)
	for i := len(queued) - 1; i >= 0 && rs.active < limit; i-- {
		a := queued[i]
		if m.runs[a.ID] != nil || waiting[a.ID] {
			continue
		}
		r := m.newRun(a)
		m.runs[a.ID] = r
		rs.active++
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.provision(r)
		}()
	}
}

// provision prepares the worktree and starts the shim.
func (m *Manager) provision(r *run) {
	ctx := r.ctx
	a, err := m.transition(ctx, r.id, StateProvisioning, "worktree being prepared", nil)
	if err != nil {
		// Cancelled (or discarded) while queued.
		m.endRun(r)
		return
	}
	// Preparing stops when the agent is cancelled (Cancel ends pctx) or
	// the daemon stops.
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	m.mu.Lock()
	r.provCancel = pcancel
	if r.cancelRequested {
		pcancel()
	}
	m.mu.Unlock()
	fail := func(stage string, err error) {
		if m.ctx.Err() != nil && !m.cancelRequested(r) {
			// The daemon is stopping, not the agent: the next daemon
			// removes what was half made and starts over (reprovision).
			m.log.Info("daemon stopping while the worktree was being prepared; left for the next daemon", zap.String("id", r.id), zap.String("stage", stage), zap.Error(err))
			m.endRun(r)
			return
		}
		m.log.Warn("provisioning failed", zap.String("id", r.id), zap.String("stage", stage), zap.Error(err))
		m.bus.Publish(Notice{Progress: &ProgressNotice{ID: r.id, Title: "Preparing " + a.Name, Message: stage + " failed", Done: true, Failed: true}})
		if cur, err := m.store.Get(context.WithoutCancel(ctx), a.ID); err == nil {
			a = cur
		}
		released := m.releaseWorktree(context.WithoutCancel(ctx), a) == nil
		state, msg := StateFailed, fmt.Sprintf("%s: %v", stage, err)
		if m.cancelRequested(r) {
			state, msg = StateCancelled, "cancelled while the worktree was being prepared"
		}
		_, _ = m.transition(context.WithoutCancel(ctx), r.id, state, msg, func(a *Agent) {
			a.Error = msg
			now := time.Now().UTC()
			a.FinishedAt = &now
			if released {
				clearResources(a)
			}
		})
		m.endRun(r)
	}
	progress := func(msg string) {
		m.appendOnce(r.id, Event{Time: time.Now().UTC(), Kind: providers.KindProgress, Text: msg})
		m.bus.Publish(Notice{Progress: &ProgressNotice{ID: r.id, Title: "Preparing " + a.Name, Message: msg}})
	}
	if err := os.MkdirAll(filepath.Dir(a.Worktree), 0o755); err != nil {
		fail("create worktree directory", err)
		return
	}
	cfg, err := config.Load(a.Repo)
	if err != nil {
		fail("load config", err)
		return
	}
	warm, stage, err := m.makeWorktree(pctx, a, cfg, progress)
	if err != nil {
		fail(stage, err)
		return
	}
	if m.cancelRequested(r) {
		fail("start", context.Canceled)
		return
	}
	integration := ""
	if len(a.Integrates) > 0 {
		progress("merging the branches to integrate")
		rs := m.repo(a.Repo)
		rs.git.Lock()
		integration, err = m.integrateBranches(pctx, a)
		rs.git.Unlock()
		if err != nil {
			fail("merge branches", err)
			return
		}
	}
	if stage, err := m.prepare(pctx, r, a, cfg, warm, progress); err != nil {
		fail(stage, err)
		return
	}
	spec, err := cfg.Spec(a.Agent)
	if err != nil {
		fail("agent", err)
		return
	}
	prov, err := providers.Get(spec.Provider)
	if err != nil {
		fail("agent", err)
		return
	}
	prompt, err := m.prompt(pctx, a)
	if err != nil {
		fail("prompt", err)
		return
	}
	prompt += integration
	task := providers.Task{
		ID: a.ID, Prompt: prompt, Worktree: a.Worktree, Branch: a.Branch, Base: a.Base,
		Model: a.Model, MaxTurns: a.MaxTurns, ReadOnly: a.ReadOnly,
	}
	argv, env, err := prov.Command(spec, task)
	if err != nil {
		fail("agent command", err)
		return
	}
	// A cancel during the last steps: nothing is started.
	if m.cancelRequested(r) || pctx.Err() != nil {
		fail("start", context.Canceled)
		return
	}
	m.mu.Lock()
	r.provCancel = nil // from here on Cancel signals the shim
	m.mu.Unlock()
	progress("starting " + a.Agent)
	if err := m.launch(r, a, argv, env, 1); err != nil {
		fail("start shim", err)
		return
	}
	m.bus.Publish(Notice{Progress: &ProgressNotice{ID: r.id, Title: "Preparing " + a.Name, Message: "running", Done: true}})
}

// launch starts run number runNo of agent a through a new shim, records it
// as running and supervises it.
func (m *Manager) launch(r *run, a *Agent, argv, env []string, runNo int) error {
	ctx := r.ctx
	spec := RunSpec{
		Argv: argv, Dir: a.Worktree, Timeout: time.Duration(a.Timeout), Grace: m.opts.Grace, Run: runNo,
		Env:       append(agentEnv(a), env...),
		BaseUsage: r.baseUsage, BaseTurns: r.baseTurns, Resumed: r.resumed,
	}
	if err := writeJSONAtomic(filepath.Join(r.dir, specFile), spec); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(r.dir, statusFile))
	_ = os.Remove(filepath.Join(r.dir, shimPIDFile))
	shimArgs := append(append([]string{}, m.opts.Shim[1:]...), "shim", r.dir)
	cmd := exec.Command(m.opts.Shim[0], shimArgs...)
	cmd.Dir = r.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if lf, err := os.OpenFile(filepath.Join(r.dir, shimLog), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err == nil {
		cmd.Stdout, cmd.Stderr = lf, lf
		defer lf.Close()
	}
	if err := m.watcher.Add(r.dir); err != nil {
		m.log.Warn("watch output", zap.String("id", r.id), zap.Error(err))
	}
	if err := cmd.Start(); err != nil {
		_ = m.watcher.Remove(r.dir)
		return fmt.Errorf("start shim: %w", err)
	}
	// Before anything else can fail: a restarted daemon finds the shim
	// through this file even if the record still says provisioning.
	if err := writeFileAtomic(filepath.Join(r.dir, shimPIDFile), []byte(strconv.Itoa(cmd.Process.Pid)+"\n")); err != nil {
		m.log.Warn("record shim pid", zap.String("id", r.id), zap.Error(err))
	}
	m.mu.Lock()
	r.cmd, r.shimPID = cmd, cmd.Process.Pid
	cancelNow := r.cancelRequested
	m.mu.Unlock()
	now := time.Now().UTC()
	reason := "agent started"
	if runNo > 1 {
		reason = fmt.Sprintf("follow-up run %d started", runNo)
	}
	if _, err := m.transition(ctx, r.id, StateRunning, reason, func(a *Agent) {
		a.ShimPID = cmd.Process.Pid
		if a.StartedAt == nil {
			a.StartedAt = &now
		}
		a.Runs = runNo
		a.FinishedAt = nil
		a.ExitCode = nil
		a.Error = ""
		a.Questions = nil
		a.StalledSince = nil
	}); err != nil {
		m.log.Error("record running", zap.String("id", r.id), zap.Error(err))
	}
	if cancelNow {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	}
	// Reap the shim when it exits; supervision itself waits on a pidfd, the
	// same way for shims this daemon started and ones it re-adopted.
	go func() { _ = cmd.Wait() }()
	m.supervise(r, cmd.Process.Pid)
	return nil
}

// promptFor is the task with the editor context the agent was given.
func promptFor(a *Agent) string {
	if a.Context == nil {
		return a.Task
	}
	c := a.Context
	var b strings.Builder
	b.WriteString(a.Task)
	if c.File != "" {
		fmt.Fprintf(&b, "\n\nContext: %s", c.File)
		if c.StartLine > 0 {
			fmt.Fprintf(&b, " lines %d-%d", c.StartLine, c.EndLine)
		}
	}
	if c.Diagnostic != "" {
		fmt.Fprintf(&b, "\nDiagnostic: %s", c.Diagnostic)
	}
	if c.Text != "" {
		fmt.Fprintf(&b, "\n```\n%s\n```", strings.TrimRight(c.Text, "\n"))
	}
	return b.String()
}

// agentEnv is the environment of an agent: the daemon's, plus where it runs.
func agentEnv(a *Agent) []string {
	env := daemonEnv(false)
	env = append(env, resourceEnv(a)...)
	return append(env,
		"PWD="+a.Worktree,
		"BGAGENTS_AGENT_ID="+a.ID,
		"BGAGENTS_WORKTREE="+a.Worktree,
		"BGAGENTS_BRANCH="+a.Branch,
		"BGAGENTS_BASE="+a.Base,
		"BGAGENTS_MAIN_CHECKOUT="+a.Repo,
	)
}

func (m *Manager) cancelRequested(r *run) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return r.cancelRequested
}

// supervise tails the run's output until the shim (pid; 0 if it is already
// gone) exits, then finalises the agent.
func (m *Manager) supervise(r *run, pid int) {
	log, err := openEventLog(r.dir)
	if err != nil {
		m.log.Error("event log", zap.String("id", r.id), zap.Error(err))
	}
	m.evMu.Lock()
	r.log = log
	m.evMu.Unlock()
	_ = m.watcher.Add(r.dir)
	exited := make(chan struct{})
	m.wg.Add(2)
	go func() {
		defer m.wg.Done()
		if pid > 0 {
			waitPID(m.ctx, pid)
		}
		if m.ctx.Err() == nil {
			close(exited)
		}
	}()
	go func() {
		defer m.wg.Done()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-m.ctx.Done():
				return // daemon stopping: the shim goes on, a new daemon re-adopts it
			case <-exited:
				m.tail(r, true)
				m.finalize(r)
				return
			case <-r.wake:
				m.tail(r, false)
			case <-tick.C:
				m.tail(r, false)
				m.liveUpdate(r)
				m.checkStall(r)
			}
		}
	}()
}

// dispatchWatch wakes the tailer of the run whose output file changed.
func (m *Manager) dispatchWatch() {
	defer m.wg.Done()
	for {
		select {
		case ev, ok := <-m.watcher.Events:
			if !ok {
				return
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create) == 0 {
				continue
			}
			base := filepath.Base(ev.Name)
			if base != stdoutFile && base != stderrFile {
				continue
			}
			id := filepath.Base(filepath.Dir(ev.Name))
			m.mu.Lock()
			r := m.runs[id]
			m.mu.Unlock()
			if r != nil {
				select {
				case r.wake <- struct{}{}:
				default:
				}
			}
		case err, ok := <-m.watcher.Errors:
			if !ok {
				return
			}
			m.log.Warn("file watch", zap.Error(err))
		}
	}
}

const maxLine = 1 << 20

// tail reads what the agent printed since the last call, turns it into
// events, appends them to the event log and publishes them. final flushes
// a last line without a newline.
func (m *Manager) tail(r *run, final bool) {
	if r.log == nil {
		return
	}
	var evs []Event
	// Bytes read but not yet consumed as complete lines, per stream.
	rest := [2]int{len(r.partial[0]), len(r.partial[1])}
	flush := func() {
		r.log.stdoutOff = r.readOff[0] - int64(rest[0])
		r.log.stderrOff = r.readOff[1] - int64(rest[1])
		if len(evs) > 0 {
			m.appendEvents(r.id, r.log, evs)
			evs = nil
		}
	}
	buf := make([]byte, 64*1024)
	for i, name := range []string{stdoutFile, stderrFile} {
		stream := strings.TrimSuffix(name, ".log")
		// The log records how far complete lines were consumed; a partial
		// last line is re-read from there after a restart.
		off := &r.readOff[i]
		if *off == 0 && len(r.partial[i]) == 0 {
			*off = [2]int64{r.log.stdoutOff, r.log.stderrOff}[i]
		}
		f, err := os.Open(filepath.Join(r.dir, name))
		if err != nil {
			continue
		}
		for {
			n, err := f.ReadAt(buf, *off)
			if n > 0 {
				*off += int64(n)
				data := append(r.partial[i], buf[:n]...)
				for {
					j := bytes.IndexByte(data, '\n')
					if j < 0 {
						break
					}
					evs = append(evs, m.parseLine(r, stream, data[:j])...)
					data = data[j+1:]
					rest[i] = len(data)
					// Publish in batches: a chatty agent never makes one
					// huge notice or holds all its output in memory.
					if len(evs) >= 512 {
						flush()
					}
				}
				if len(data) > maxLine {
					evs = append(evs, m.parseLine(r, stream, data)...)
					data = nil
				}
				rest[i] = len(data)
				r.partial[i] = append([]byte(nil), data...)
			}
			if err != nil || n == 0 {
				break
			}
		}
		f.Close()
		if final && len(r.partial[i]) > 0 {
			evs = append(evs, m.parseLine(r, stream, r.partial[i])...)
			r.partial[i] = nil
			rest[i] = 0
		}
	}
	if final {
		if f, ok := r.parser.(providers.Flusher); ok {
			evs = append(evs, r.afterParse(f.Flush())...)
		}
	}
	moved := len(evs) > 0 || r.log.stdoutOff != r.readOff[0]-int64(rest[0]) || r.log.stderrOff != r.readOff[1]-int64(rest[1])
	flush()
	if moved {
		r.lastOutput = time.Now()
		if r.stalled {
			r.stalled = false
			m.update(r.id, func(a *Agent) { a.StalledSince = nil })
		}
		if !final {
			m.liveUpdate(r)
		}
	}
}

// liveUpdate puts the run's usage, turns and session into the record, so
// editors show cost and turns while the agent works: at most once a second,
// and the supervisor's tick sends what a burst left behind.
func (m *Manager) liveUpdate(r *run) {
	if r.usage == r.shownUsage && r.turns == r.shownTurns && r.sessionID == r.shownSession || time.Since(r.shownAt) < time.Second {
		return
	}
	r.shownUsage, r.shownTurns, r.shownSession, r.shownAt = r.usage, r.turns, r.sessionID, time.Now()
	total, turns, session := r.totalUsage(), r.baseTurns+r.turns, r.sessionID
	m.update(r.id, func(a *Agent) {
		if a.State == StateRunning {
			a.Usage, a.Turns, a.SessionID = total, turns, session
		}
	})
}

// checkStall reports an agent that has printed nothing for the stall
// timeout: an event and an agentChanged with stalledSince set. The agent
// keeps running.
func (m *Manager) checkStall(r *run) {
	if r.stalled || r.stallAfter <= 0 || time.Since(r.lastOutput) < r.stallAfter {
		return
	}
	r.stalled = true
	since := r.lastOutput.UTC()
	msg := fmt.Sprintf("no output for %s", time.Since(r.lastOutput).Round(time.Second))
	m.appendEvents(r.id, r.log, []Event{{Time: time.Now().UTC(), Kind: providers.KindStall, Text: msg}})
	m.update(r.id, func(a *Agent) { a.StalledSince = &since })
	m.log.Info("agent stalled", zap.String("id", r.id), zap.String("what", msg))
}

// update changes a record without a state transition and publishes it.
func (m *Manager) update(id string, mutate func(*Agent)) {
	unlock := m.lockAgent(id)
	defer unlock()
	ctx := context.WithoutCancel(m.ctx)
	a, err := m.store.Get(ctx, id)
	if err != nil {
		return
	}
	mutate(a)
	a.UpdatedAt = time.Now().UTC()
	if err := m.store.Put(ctx, a); err != nil {
		m.log.Error("update record", zap.String("id", id), zap.Error(err))
		return
	}
	m.publishAgent(a)
}

func (m *Manager) parseLine(r *run, stream string, line []byte) []Event {
	line = []byte(strings.TrimRight(string(line), "\r"))
	evs := r.afterParse(r.parser.Line(stream, line))
	m.checkLimits(r)
	return evs
}

// configureParser tells a parser that needs it how the run was started.
func (r *run) configureParser(a *Agent) {
	if c, ok := r.parser.(providers.Configurable); ok {
		c.Configure(r.spec, providers.Task{ID: a.ID, Worktree: a.Worktree, Model: a.Model, MaxTurns: a.MaxTurns, ReadOnly: a.ReadOnly})
	}
}

// replay feeds the events the current run already logged (those after its
// last "running" state event) through afterParse, restoring the run's
// state after a daemon restart.
func (r *run) replay() {
	evs, err := readEvents(r.dir, 1, 0)
	if err != nil {
		return
	}
	start := 0
	for i, ev := range evs {
		if ev.Kind == providers.KindState && ev.State == string(StateRunning) {
			start = i + 1
		}
	}
	r.afterParse(evs[start:])
	r.shownUsage, r.shownTurns, r.shownSession = r.usage, r.turns, r.sessionID
}

// afterParse keeps what the daemon needs from the events: the result,
// usage, session, turns and questions.
func (r *run) afterParse(evs []Event) []Event {
	for _, ev := range evs {
		switch ev.Kind {
		case providers.KindOutput:
			if t := strings.TrimSpace(ev.Text); t != "" {
				if ev.Stream == "stderr" {
					r.lastErr = t
				} else {
					r.lastOut = t
				}
			}
		case providers.KindResult:
			if ev.Text != "" || r.result == "" {
				r.result = ev.Text
			}
			if ev.Usage != nil {
				r.usage = *ev.Usage
			}
			if ev.Turns > 0 {
				r.turns = ev.Turns
			}
			r.errorKind, r.resultError = ev.ErrorKind, ev.IsError
		case providers.KindUsage:
			if ev.Usage != nil {
				r.usage.Add(*ev.Usage)
			}
		case providers.KindSession:
			if ev.SessionID != "" {
				r.sessionID = ev.SessionID
			}
			// No configured model: price by the model the CLI reports.
			if r.price == nil && r.prices != nil && ev.Text != "" {
				r.price = r.prices.PriceFor(strings.TrimSpace(ev.Text))
			}
		case providers.KindToolCall:
			r.toolCalls++
			if r.turns < r.toolCalls {
				r.turns = r.toolCalls
			}
		case providers.KindQuestion:
			r.questions = append(r.questions, Question{Text: ev.Text, Tool: ev.Tool, Path: ev.Path, Command: ev.Command})
		}
	}
	return evs
}

// totalUsage is what the agent used over all its runs, with the cost
// estimated from the price table when the vendor reports none.
func (r *run) totalUsage() providers.Usage {
	u := r.usage
	if u.CostUSD == 0 && r.price != nil && u.InputTokens+u.OutputTokens > 0 {
		u.CostUSD = r.price.Cost(u.InputTokens, u.OutputTokens, u.CacheReadTokens, u.CacheWriteTokens)
		u.CostEstimated = true
	}
	t := r.baseUsage
	t.Add(u)
	return t
}

// checkLimits stops the agent when it passes its budget or turn limit.
func (m *Manager) checkLimits(r *run) {
	if r.limitReason != "" {
		return
	}
	u := r.totalUsage()
	switch {
	case r.budgetUSD > 0 && u.CostUSD > r.budgetUSD:
		r.limitReason = fmt.Sprintf("budget exceeded: spent $%.4f of the $%.4f budget", u.CostUSD, r.budgetUSD)
		r.errorKind = providers.ErrorBudget
	case r.budgetTokens > 0 && u.InputTokens+u.OutputTokens > r.budgetTokens:
		r.limitReason = fmt.Sprintf("budget exceeded: used %d of the %d-token budget", u.InputTokens+u.OutputTokens, r.budgetTokens)
		r.errorKind = providers.ErrorBudget
	case r.maxTurns > 0 && r.turns > r.maxTurns:
		r.limitReason = fmt.Sprintf("turn limit reached: %d turns, the limit is %d", r.turns, r.maxTurns)
		r.errorKind = providers.ErrorMaxTurns
	default:
		return
	}
	m.log.Info("limit reached; stopping the agent", zap.String("id", r.id), zap.String("reason", r.limitReason))
	m.mu.Lock()
	pid := r.shimPID
	m.mu.Unlock()
	if pid > 0 {
		_ = syscall.Kill(pid, syscall.SIGTERM)
	}
}

// appendEvents writes events to an agent's log and publishes them.
func (m *Manager) appendEvents(id string, l *eventLog, evs []Event) {
	m.evMu.Lock()
	defer m.evMu.Unlock()
	m.appendEventsLocked(id, l, evs)
}

func (m *Manager) appendEventsLocked(id string, l *eventLog, evs []Event) {
	evs, err := l.append(evs)
	if err != nil {
		m.log.Error("append events", zap.String("id", id), zap.Error(err))
		return
	}
	m.bus.Publish(Notice{Output: &OutputNotice{ID: id, Events: evs}})
}

// finalize records how the run ended, commits what the agent left
// uncommitted, computes its diff and cleans up when nothing changed.
func (m *Manager) finalize(r *run) {
	defer m.endRun(r)
	unlock := m.lockAgent(r.id)
	defer unlock()
	ctx := context.WithoutCancel(m.ctx)
	_ = m.watcher.Remove(r.dir)
	a, err := m.store.Get(ctx, r.id)
	if err != nil {
		m.log.Error("finalize", zap.String("id", r.id), zap.Error(err))
		return
	}
	var st RunStatus
	statusErr := readJSON(filepath.Join(r.dir, statusFile), &st)
	state, reason := StateSucceeded, "agent exited 0"
	var exitCode *int
	errMsg := ""
	switch {
	case statusErr != nil && m.cancelRequested(r):
		// Cancelled before the shim could take the signal itself (it was
		// still starting): the cancel, not a loss.
		state, reason = StateCancelled, "cancelled"
		errMsg = "cancelled"
		killAgentGroup(r.dir, r.id)
	case statusErr != nil:
		state, reason = StateLost, "the shim ended without recording how the agent exited"
		errMsg = reason
		// Anything of the agent still running is an orphan now.
		killAgentGroup(r.dir, r.id)
	case r.limitReason != "":
		state, reason = StateFailed, r.errorKind+": "+r.limitReason
		exitCode = &st.ExitCode
		errMsg = reason
	case st.Cancelled:
		state, reason = StateCancelled, "cancelled"
		exitCode = &st.ExitCode
		errMsg = "cancelled"
	case st.TimedOut:
		state, reason = StateFailed, fmt.Sprintf("timed out after %s", time.Duration(a.Timeout))
		exitCode = &st.ExitCode
		errMsg = reason
	case st.Error != "":
		state, reason = StateFailed, st.Error
		exitCode = &st.ExitCode
		errMsg = st.Error
	case len(r.questions) > 0 && !(st.ExitCode != 0 && r.resultError):
		state = StateNeedsInput
		exitCode = &st.ExitCode
		reason = "needs input: " + r.questions[0].Text
		if len(r.questions) > 1 {
			reason += fmt.Sprintf(" (and %d more)", len(r.questions)-1)
		}
		errMsg = reason
	case st.ExitCode != 0 || r.resultError:
		state = StateFailed
		exitCode = &st.ExitCode
		reason = fmt.Sprintf("agent exited with code %d", st.ExitCode)
		if st.Signal != "" {
			reason = fmt.Sprintf("agent killed by %s", st.Signal)
		}
		switch {
		case r.resultError && r.result != "":
			reason += ": " + r.result
		case r.lastErr != "":
			reason += ": " + r.lastErr
		}
		if r.errorKind != "" {
			reason = r.errorKind + ": " + reason
		}
		errMsg = reason
	default:
		exitCode = &st.ExitCode
	}
	// Land what the agent left in its worktree on its branch.
	var diff DiffStat
	head := ""
	if _, err := os.Stat(a.Worktree); err == nil {
		if _, err := worktree.CommitAll(ctx, a.Worktree, commitMessage(a)); err != nil {
			m.log.Warn("commit agent changes", zap.String("id", a.ID), zap.Error(err))
			if errMsg == "" {
				errMsg = "could not commit the agent's changes: " + err.Error()
			}
		}
		if s, err := worktree.Stat(ctx, a.Repo, a.BaseCommit, a.Branch); err == nil {
			diff = DiffStat{Commits: s.Commits, Files: s.Files, Additions: s.Additions, Deletions: s.Deletions}
		}
		head, _ = worktree.Head(ctx, a.Worktree)
		if state == StateSucceeded && len(a.Integrates) > 0 {
			if files, err := worktree.ConflictMarkers(ctx, a.Worktree); err == nil && len(files) > 0 {
				state = StateFailed
				reason = "conflict markers are still in: " + strings.Join(files, ", ") + "; send a follow-up to resolve them"
				errMsg = reason
			}
		}
	}
	result := r.result
	if result == "" {
		result = r.lastOut
	}
	now := time.Now().UTC()
	cleaned, released := false, false
	branchTip, _ := worktree.ResolveCommit(ctx, a.Repo, a.Branch)
	moved := head != "" && head != branchTip // the agent left HEAD elsewhere (detached)
	if diff.Commits == 0 && diff.Files == 0 && !moved && state != StateLost && state != StateNeedsInput {
		if cfg, err := config.Load(a.Repo); err == nil && cfg.CleanupUnchanged() {
			rs := m.repo(a.Repo)
			rs.git.Lock()
			dirty, derr := worktree.Dirty(ctx, a.Worktree)
			if derr == nil && !dirty {
				_ = worktree.Remove(ctx, a.Repo, a.Worktree, false)
				_ = worktree.DeleteBranch(ctx, a.Repo, a.Branch, false)
				cleaned = true
			}
			rs.git.Unlock()
			if cleaned {
				// Outside the git lock. What cannot be released now is
				// recorded and retried (rm, the next daemon start).
				released = m.releaseOrRecord(ctx, a) == nil
			}
		}
	}
	_, err = m.transitionLocked(ctx, a.ID, state, reason, func(a *Agent) {
		a.ExitCode = exitCode
		a.Error = errMsg
		a.Result = result
		a.Usage = r.totalUsage()
		a.Turns = r.baseTurns + r.turns
		a.SessionID = r.sessionID
		a.Questions = append([]Question(nil), r.questions...)
		a.StalledSince = nil
		a.Diff = diff
		a.Head = head
		a.FinishedAt = &now
		if statusErr == nil && !st.FinishedAt.IsZero() {
			t := st.FinishedAt.UTC()
			a.FinishedAt = &t
		}
		a.ShimPID = 0
		a.Cleaned = cleaned
		if released {
			clearResources(a)
		}
		if !st.StartedAt.IsZero() && a.StartedAt == nil {
			t := st.StartedAt.UTC()
			a.StartedAt = &t
		}
	})
	if err != nil {
		m.log.Error("finalize", zap.String("id", a.ID), zap.Error(err))
	}
	m.log.Info("agent ended", zap.String("id", a.ID), zap.String("state", string(state)), zap.String("reason", reason))
}

func commitMessage(a *Agent) string {
	subject := strings.SplitN(a.Task, "\n", 2)[0]
	if len(subject) > 72 {
		subject = subject[:69] + "..."
	}
	return fmt.Sprintf("%s\n\nbgagents agent %s (%s)\n\n%s\n", subject, a.Name, a.ID, a.Task)
}

// endRun forgets a run and lets the next queued agent of its repo start.
func (m *Manager) endRun(r *run) {
	m.mu.Lock()
	if m.runs[r.id] == r {
		delete(m.runs, r.id)
		m.repoLocked(r.repo).active--
	}
	m.mu.Unlock()
	if r.log != nil {
		m.evMu.Lock()
		_ = r.log.close()
		r.log = nil
		m.evMu.Unlock()
	}
	r.cancel()
	select {
	case <-r.done:
	default:
		close(r.done)
	}
	m.schedule(r.repo)
}

// transition moves agent id to state to, applying mutate, and publishes
// the new record.
func (m *Manager) transition(ctx context.Context, id string, to State, reason string, mutate func(*Agent)) (*Agent, error) {
	unlock := m.lockAgent(id)
	defer unlock()
	return m.transitionLocked(ctx, id, to, reason, mutate)
}

func (m *Manager) transitionLocked(ctx context.Context, id string, to State, reason string, mutate func(*Agent)) (*Agent, error) {
	a, err := m.store.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	from := a.State
	if from != to {
		if err := CheckTransition(from, to); err != nil {
			return nil, Errorf(ErrState, "agent %s is %s: %w", a.Name, from, err)
		}
	}
	if mutate != nil {
		mutate(a)
	}
	a.State = to
	a.UpdatedAt = time.Now().UTC()
	// The state event goes into the log before the store changes: a
	// follower that reads the log and then sees the new state has seen the
	// event too.
	if from != to {
		m.stateEvent(a, reason)
	}
	if err := m.store.PutTransition(ctx, a, from, reason); err != nil {
		return nil, err
	}
	m.publishAgent(a)
	m.afterTransition(a.Clone(), from)
	return a.Clone(), nil
}

// stateEvent writes a state change into the agent's event log.
func (m *Manager) stateEvent(a *Agent, reason string) {
	m.appendOnce(a.ID, Event{Time: a.UpdatedAt, Kind: providers.KindState, State: string(a.State), Text: reason})
}

// appendOnce appends one event to an agent's log, through the run's open
// log when there is one.
func (m *Manager) appendOnce(id string, ev Event) {
	m.mu.Lock()
	r := m.runs[id]
	m.mu.Unlock()
	m.evMu.Lock()
	defer m.evMu.Unlock()
	if r != nil && r.log != nil {
		m.appendEventsLocked(id, r.log, []Event{ev})
		return
	}
	l, err := openEventLog(m.agentDir(id))
	if err != nil {
		return
	}
	m.appendEventsLocked(id, l, []Event{ev})
	_ = l.close()
}

func (m *Manager) publishAgent(a *Agent) {
	m.bus.Publish(Notice{Agent: a.Clone()})
}
