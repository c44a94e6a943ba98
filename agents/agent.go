// Package agents owns the agent record and its states, the store, the
// supervisor (queue, concurrency limit, timeouts, cancel, shim, re-adoption)
// and the event bus. Providers that turn a task into a command line and a
// command's output into events live in agents/providers.
package agents

import (
	"fmt"
	"time"

	"github.com/bgagents/bgagents/agents/providers"
)

// State is an agent's lifecycle state. The strings are the wire and store
// values; never renumber or rename them.
type State string

// The states an agent moves through. See Transition for the allowed moves.
const (
	StateQueued       State = "queued"
	StateProvisioning State = "provisioning"
	StateRunning      State = "running"
	StateNeedsInput   State = "needs_input"
	StateSucceeded    State = "succeeded"
	StateFailed       State = "failed"
	StateCancelled    State = "cancelled"
	StateMerged       State = "merged"
	StateDiscarded    State = "discarded"
	StateLost         State = "lost"
)

// AllStates lists every state in lifecycle order.
var AllStates = []State{
	StateQueued, StateProvisioning, StateRunning, StateNeedsInput,
	StateSucceeded, StateFailed, StateCancelled, StateMerged, StateDiscarded, StateLost,
}

// Valid reports whether s is one of the known states.
func (s State) Valid() bool {
	for _, k := range AllStates {
		if s == k {
			return true
		}
	}
	return false
}

// Live reports whether an agent in this state still has (or will have) a
// process: queued, provisioning, running or needs_input.
func (s State) Live() bool {
	switch s {
	case StateQueued, StateProvisioning, StateRunning, StateNeedsInput:
		return true
	}
	return false
}

// Active reports whether the agent is on its way or working: queued,
// provisioning or running (needs_input waits for a person).
func (s State) Active() bool {
	return s == StateQueued || s == StateProvisioning || s == StateRunning
}

// Final reports whether the agent's process has ended (the run is over).
func (s State) Final() bool { return !s.Live() }

// Landed reports whether the agent's worktree and branch have been merged
// or thrown away: nothing of it is left but the record.
func (s State) Landed() bool { return s == StateMerged || s == StateDiscarded }

// transitions lists the allowed moves. Every transition goes through
// CheckTransition.
var transitions = map[State][]State{
	StateQueued:       {StateProvisioning, StateCancelled, StateFailed, StateDiscarded},
	StateProvisioning: {StateRunning, StateFailed, StateCancelled, StateLost, StateQueued},
	StateRunning:      {StateNeedsInput, StateSucceeded, StateFailed, StateCancelled, StateLost},
	StateNeedsInput:   {StateRunning, StateSucceeded, StateFailed, StateCancelled, StateMerged, StateDiscarded},
	StateSucceeded:    {StateMerged, StateDiscarded, StateRunning},
	StateFailed:       {StateMerged, StateDiscarded, StateRunning},
	StateCancelled:    {StateMerged, StateDiscarded},
	StateLost:         {StateMerged, StateDiscarded},
	StateMerged:       {},
	StateDiscarded:    {},
}

// CheckTransition returns an error unless moving from one state to another
// is allowed.
func CheckTransition(from, to State) error {
	for _, s := range transitions[from] {
		if s == to {
			return nil
		}
	}
	return fmt.Errorf("agent state cannot change from %s to %s", from, to)
}

// Usage is what a run consumed (see providers.Usage).
type Usage = providers.Usage

// Event is one normalised thing an agent did (see providers.Event).
type Event = providers.Event

// DiffStat summarises an agent's branch against its base commit.
type DiffStat struct {
	Commits   int `json:"commits"`
	Files     int `json:"files"`
	Additions int `json:"additions"`
	Deletions int `json:"deletions"`
}

// Context is editor context attached to a task: a file, a range and the
// selected text or diagnostic message.
type Context struct {
	File       string `json:"file,omitempty"`
	StartLine  int    `json:"startLine,omitempty"`
	EndLine    int    `json:"endLine,omitempty"`
	Text       string `json:"text,omitempty"`
	Diagnostic string `json:"diagnostic,omitempty"`
}

// Agent is the record of one agent: what it was asked, where it runs and how
// it ended. It is the full snapshot sent in bgagents/agentChanged and printed
// by `--json`.
type Agent struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Task       string     `json:"task"`
	Context    *Context   `json:"context,omitempty"`
	Agent      string     `json:"agent"`
	Provider   string     `json:"provider,omitempty"`
	Model      string     `json:"model"`
	Repo       string     `json:"repo"`
	Worktree   string     `json:"worktree"`
	Branch     string     `json:"branch"`
	Base       string     `json:"base"`
	BaseCommit string     `json:"baseCommit"`
	State      State      `json:"state"`
	ExitCode   *int       `json:"exitCode"`
	Error      string     `json:"error"`
	CreatedAt  time.Time  `json:"createdAt"`
	StartedAt  *time.Time `json:"startedAt"`
	FinishedAt *time.Time `json:"finishedAt"`
	Result     string     `json:"result"`
	Usage      Usage      `json:"usage"`
	Diff       DiffStat   `json:"diff"`
	Timeout    Duration   `json:"timeout,omitempty"`
	// Limits of the agent: 0 means none (or the vendor's default).
	MaxTurns     int     `json:"maxTurns,omitempty"`
	BudgetUSD    float64 `json:"budgetUsd,omitempty"`
	BudgetTokens int64   `json:"budgetTokens,omitempty"`
	// ReadOnly agents may read but not change the worktree (reviewers).
	ReadOnly bool `json:"readOnly,omitempty"`
	// ReviewOf is set on a reviewer: the id of the agent it reviews.
	ReviewOf string `json:"reviewOf,omitempty"`
	// Reviews of this agent's work, oldest first.
	Reviews []Review `json:"reviews,omitempty"`
	// After is the agent this one waits for (a pipeline step): it starts
	// on that agent's branch once it has succeeded.
	After string `json:"after,omitempty"`
	// Group ties the variants of a fan-out together; Variant is this
	// agent's number in it (1-based).
	Group   string `json:"group,omitempty"`
	Variant int    `json:"variant,omitempty"`
	// Integrates lists the agents whose branches an integration agent
	// merged into its own before it started.
	Integrates []string `json:"integrates,omitempty"`
	// Conflicts are the other live agents, and the base branch, whose
	// changes would conflict with this agent's branch if both landed.
	Conflicts []Conflict `json:"conflicts,omitempty"`
	// Pushed is set once the branch was pushed.
	Pushed *Push `json:"pushed,omitempty"`
	// PullRequest is the URL of the pull request opened for the branch.
	PullRequest string `json:"pullRequest,omitempty"`
	// SessionID is the vendor's conversation id; follow-ups resume it.
	SessionID string `json:"sessionId,omitempty"`
	// Turns counts the agent's turns over all its runs.
	Turns int `json:"turns,omitempty"`
	// Runs counts the runs: the first and each follow-up.
	Runs int `json:"runs,omitempty"`
	// Questions are what the agent asked or was refused when it stopped
	// in needs_input.
	Questions []Question `json:"questions,omitempty"`
	// StalledSince is set while the agent has printed nothing for longer
	// than the stall timeout.
	StalledSince *time.Time `json:"stalledSince,omitempty"`
	// Port is the first of the agent's block of PortCount ports (PORT).
	Port      int `json:"port,omitempty"`
	PortCount int `json:"portCount,omitempty"`
	// DatabaseURL points at the agent's own copy of the database.
	DatabaseURL string `json:"databaseUrl,omitempty"`
	// Cleaned is set when the worktree and branch were removed because
	// the agent changed nothing.
	Cleaned bool `json:"cleaned,omitempty"`
	// Head is the branch's commit when the run ended (or when merged).
	Head string `json:"head,omitempty"`
	// ShimPID is the supervising shim's process id while the agent runs.
	ShimPID int `json:"shimPid,omitempty"`
	// UpdatedAt changes on every write of the record.
	UpdatedAt time.Time `json:"updatedAt"`
}

// Clone returns a deep copy of a.
func (a *Agent) Clone() *Agent {
	if a == nil {
		return nil
	}
	c := *a
	if a.Context != nil {
		ctx := *a.Context
		c.Context = &ctx
	}
	if a.ExitCode != nil {
		v := *a.ExitCode
		c.ExitCode = &v
	}
	if a.StartedAt != nil {
		v := *a.StartedAt
		c.StartedAt = &v
	}
	if a.FinishedAt != nil {
		v := *a.FinishedAt
		c.FinishedAt = &v
	}
	if a.StalledSince != nil {
		v := *a.StalledSince
		c.StalledSince = &v
	}
	c.Questions = append([]Question(nil), a.Questions...)
	c.Reviews = nil
	for _, r := range a.Reviews {
		c.Reviews = append(c.Reviews, r.clone())
	}
	c.Integrates = append([]string(nil), a.Integrates...)
	c.Conflicts = nil
	for _, x := range a.Conflicts {
		x.Files = append([]string(nil), x.Files...)
		c.Conflicts = append(c.Conflicts, x)
	}
	if a.Pushed != nil {
		p := *a.Pushed
		c.Pushed = &p
	}
	return &c
}

// Review is a reviewer agent's verdict on another agent's work.
type Review struct {
	// ID and Name are the reviewer agent's.
	ID    string `json:"id"`
	Name  string `json:"name"`
	Agent string `json:"agent"`
	Model string `json:"model,omitempty"`
	// Head is the commit that was reviewed.
	Head string `json:"head"`
	// State is the reviewer's state: live while it works.
	State State `json:"state"`
	// Verdict is "approve", "request_changes" or "comment" once it ended
	// ("" while it works or when it failed).
	Verdict  string    `json:"verdict,omitempty"`
	Summary  string    `json:"summary,omitempty"`
	Findings []Finding `json:"findings,omitempty"`
	// Error says why the review has no verdict.
	Error      string     `json:"error,omitempty"`
	CreatedAt  time.Time  `json:"createdAt"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

func (r Review) clone() Review {
	r.Findings = append([]Finding(nil), r.Findings...)
	if r.FinishedAt != nil {
		t := *r.FinishedAt
		r.FinishedAt = &t
	}
	return r
}

// Verdicts a review can give.
const (
	VerdictApprove        = "approve"
	VerdictRequestChanges = "request_changes"
	VerdictComment        = "comment"
)

// Finding is one problem a reviewer found.
type Finding struct {
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// Severity is "high", "medium" or "low".
	Severity string `json:"severity,omitempty"`
	Message  string `json:"message"`
}

// Conflict says that two branches would not merge cleanly.
type Conflict struct {
	// Agent and Name identify the other agent; both are empty when the
	// conflict is with the base branch named by Base.
	Agent string `json:"agent,omitempty"`
	Name  string `json:"name,omitempty"`
	Base  string `json:"base,omitempty"`
	// Files are the paths that would conflict.
	Files []string `json:"files"`
}

// Push records where an agent's branch was pushed.
type Push struct {
	Remote string    `json:"remote"`
	Branch string    `json:"branch"`
	Commit string    `json:"commit"`
	At     time.Time `json:"at"`
}

// Question is something an agent asked, or a permission it was refused,
// that a person has to answer with a follow-up.
type Question struct {
	Text    string `json:"text"`
	Tool    string `json:"tool,omitempty"`
	Path    string `json:"path,omitempty"`
	Command string `json:"command,omitempty"`
}

// Duration is a time.Duration that travels as a Go duration string ("90s").
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(fmt.Sprintf("%q", time.Duration(d).String())), nil
}

// UnmarshalJSON reads a duration string ("90s", "15m") or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if _, err := fmt.Sscanf(string(b), "%q", &s); err != nil {
			return fmt.Errorf("timeout must be a string like \"15m\": %w", err)
		}
		if s == "" {
			*d = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("timeout %q is not a duration like \"15m\" or \"90s\"", s)
		}
		if v < 0 {
			return fmt.Errorf("timeout %q is negative", s)
		}
		*d = Duration(v)
		return nil
	}
	var secs float64
	if _, err := fmt.Sscanf(string(b), "%g", &secs); err != nil {
		return fmt.Errorf("timeout must be a string like \"15m\" or a number of seconds")
	}
	if secs < 0 {
		return fmt.Errorf("timeout %v is negative", secs)
	}
	*d = Duration(secs * float64(time.Second))
	return nil
}
