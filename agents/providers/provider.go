// Package providers turns a task into the command line of an agent CLI and
// that CLI's output into normalised events. One file per provider.
package providers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

// Usage is what a run consumed. Cost is in US dollars; CostEstimated is set
// when the cost was computed from a price table rather than reported.
type Usage struct {
	InputTokens      int64   `json:"inputTokens"`
	OutputTokens     int64   `json:"outputTokens"`
	CacheReadTokens  int64   `json:"cacheReadTokens"`
	CacheWriteTokens int64   `json:"cacheWriteTokens"`
	CostUSD          float64 `json:"costUsd"`
	CostEstimated    bool    `json:"costEstimated,omitempty"`
}

// Add accumulates o into u.
func (u *Usage) Add(o Usage) {
	u.InputTokens += o.InputTokens
	u.OutputTokens += o.OutputTokens
	u.CacheReadTokens += o.CacheReadTokens
	u.CacheWriteTokens += o.CacheWriteTokens
	u.CostUSD += o.CostUSD
	u.CostEstimated = u.CostEstimated || o.CostEstimated
}

// Kind names what an event is. The strings travel on the wire.
type Kind string

// Event kinds.
const (
	// KindOutput is a line the agent printed that no parser understood
	// as anything more specific.
	KindOutput Kind = "output"
	// KindState is a change of the agent's state, written by the daemon.
	KindState Kind = "state"
	// KindSession carries the vendor's session id.
	KindSession Kind = "session"
	// KindText is the assistant's prose.
	KindText Kind = "text"
	// KindToolCall is a tool the agent invoked (ToolKind, Path or Command).
	KindToolCall Kind = "tool_call"
	// KindToolResult is the outcome of a tool call (Status ok, denied or error).
	KindToolResult Kind = "tool_result"
	// KindUsage is token usage and cost so far.
	KindUsage Kind = "usage"
	// KindQuestion is a question or a permission request to the user.
	KindQuestion Kind = "question"
	// KindResult is the final result of a run.
	KindResult Kind = "result"
	// KindRaw is a structured line of an unknown type, kept verbatim.
	KindRaw Kind = "raw"
	// KindStall says the agent printed nothing for a while.
	KindStall Kind = "stall"
	// KindMessage is a follow-up message the user sent the agent.
	KindMessage Kind = "message"
	// KindProgress is a step of preparing the agent's worktree.
	KindProgress Kind = "progress"
)

// AllKinds lists every event kind.
var AllKinds = []Kind{
	KindOutput, KindState, KindSession, KindText, KindToolCall, KindToolResult,
	KindUsage, KindQuestion, KindResult, KindRaw, KindStall, KindMessage, KindProgress,
}

// Event is one normalised thing an agent did. Seq numbers are per agent,
// from 1, without gaps: a follower resumes with `from`.
type Event struct {
	Seq       int64     `json:"seq"`
	Time      time.Time `json:"time"`
	Kind      Kind      `json:"kind"`
	Stream    string    `json:"stream,omitempty"` // stdout or stderr, for output lines
	Text      string    `json:"text,omitempty"`
	Tool      string    `json:"tool,omitempty"`
	ToolKind  string    `json:"toolKind,omitempty"` // edit, write, command, read, other
	Path      string    `json:"path,omitempty"`
	Command   string    `json:"command,omitempty"`
	Status    string    `json:"status,omitempty"` // ok, denied, error
	SessionID string    `json:"sessionId,omitempty"`
	Usage     *Usage    `json:"usage,omitempty"`
	Turns     int       `json:"turns,omitempty"`
	ErrorKind string    `json:"errorKind,omitempty"`
	State     string    `json:"state,omitempty"`
	// IsError marks a failed tool result or a failed final result.
	IsError bool   `json:"isError,omitempty"`
	Raw     string `json:"raw,omitempty"`
}

// Error kinds of a final result (Event.ErrorKind).
const (
	ErrorMaxTurns = "max_turns" // the turn limit was reached
	ErrorAPI      = "api_error" // the model API failed (HTTP error, overload)
	ErrorBudget   = "budget"    // the budget was exhausted
	ErrorAuth     = "auth"      // missing or rejected credentials
	ErrorOther    = "error"     // anything else the vendor reported
)

// Task is what a provider needs to build a command line.
type Task struct {
	ID       string
	Prompt   string // the task, or for a follow-up the user's message
	Worktree string
	Branch   string
	Base     string
	Model    string
	// MaxTurns limits the run (0: the spec's max_turns, else the vendor's
	// default).
	MaxTurns int
	// ReadOnly asks for a run that may read but not change files or run
	// commands that change them (reviewers); it overrides PermissionMode.
	ReadOnly bool
	// Resume is the vendor session id to continue (a follow-up); empty for
	// a first run.
	Resume string
	// AllowTools names tools to allow for this run (those denied before,
	// when the user approved them in a follow-up).
	AllowTools []string
}

// Spec is an agent as configured: `[agents.NAME]` in .bgagents.toml.
type Spec struct {
	Name           string
	Provider       string
	Command        []string
	Binary         string
	Model          string
	Args           []string
	Env            map[string]string
	MaxTurns       int
	PermissionMode string
}

// Parser turns one run's output, line by line, into events. A parser keeps
// what it needs between lines (a session id, usage so far).
type Parser interface {
	// Line parses one line (without its newline) of stream "stdout" or
	// "stderr". It never fails: what it does not understand becomes an
	// output or raw event.
	Line(stream string, line []byte) []Event
}

// Configurable is implemented by parsers whose reading depends on how the
// run was started (Codex: whether a sandbox could have refused a command);
// the daemon calls Configure before the first line.
type Configurable interface {
	Configure(spec Spec, task Task)
}

// Flusher is implemented by parsers that hold text back (streamed pieces
// joined into one event): Flush returns what is left when the output ends.
type Flusher interface {
	Flush() []Event
}

// Provider is one kind of agent CLI.
type Provider interface {
	// Name is the provider's key, as in `provider = "claude"`.
	Name() string
	// Command returns the argv (argv[0] resolved to an executable) and the
	// extra environment ("K=V") for running spec on task.
	Command(spec Spec, task Task) (argv []string, env []string, err error)
	// NewParser returns a parser for one run's output.
	NewParser() Parser
	// Install says how to install the CLI when it is missing.
	Install() string
	// CanResume reports whether follow-ups continue the vendor's session.
	CanResume() bool
}

// ResumedParserMaker is implemented by providers whose CLI reports usage
// as a running total over the whole session (Codex): a follow-up's parser
// must know what the session used before, or it counts it twice.
type ResumedParserMaker interface {
	NewResumedParser(prior Usage) Parser
}

// VersionOf runs `binary --version` (10 s at most: some CLIs start slowly)
// and returns its first line; doctor uses it.
func VersionOf(binary string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "--version")
	cmd.Stdin = nil
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", binary, err)
	}
	line := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
	return line, nil
}

var registry = map[string]Provider{}

// Register adds a provider; called from init of each provider's file.
func Register(p Provider) { registry[p.Name()] = p }

// Get returns the provider named name.
func Get(name string) (Provider, error) {
	p, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("unknown provider %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return p, nil
}

// Names lists the registered providers, sorted.
func Names() []string {
	var out []string
	for n := range registry {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// ErrNotInstalled is returned (wrapped) when an agent's executable is missing.
var ErrNotInstalled = errors.New("agent executable not found")

// LookPath finds an executable: a path containing a slash is taken relative
// to dir (the worktree) when not absolute; a bare name is searched on PATH.
func LookPath(name, dir, install string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("%w: empty command", ErrNotInstalled)
	}
	if strings.Contains(name, "/") {
		p := name
		if !strings.HasPrefix(p, "/") {
			p = dir + "/" + p
		}
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return "", fmt.Errorf("%w: %s is not an executable file%s", ErrNotInstalled, p, installHint(install))
		}
		return p, nil
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %q is not on PATH%s", ErrNotInstalled, name, installHint(install))
	}
	return p, nil
}

func installHint(install string) string {
	if install == "" {
		return ""
	}
	return "; " + install
}

// Expand replaces the placeholders {prompt}, {worktree}, {branch}, {base},
// {id} and {model} inside one argument. Each argument stays one argument:
// nothing is split or passed through a shell.
func Expand(arg string, t Task) string {
	if !strings.Contains(arg, "{") {
		return arg
	}
	r := strings.NewReplacer(
		"{prompt}", t.Prompt,
		"{worktree}", t.Worktree,
		"{branch}", t.Branch,
		"{base}", t.Base,
		"{id}", t.ID,
		"{model}", t.Model,
	)
	return r.Replace(arg)
}

// EnvList turns a map into sorted "K=V" entries.
func EnvList(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
