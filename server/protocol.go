// Package server is the daemon's side of the wire: LSP-framed JSON-RPC 2.0
// over a Unix socket, the LSP lifecycle, code actions, the custom
// bgagents/* methods and notifications, the stdio forwarder editors start,
// and the Go client the CLI uses.
package server

import (
	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
)

// This file is the wire contract: every custom method name and every
// params/result type. docs/protocol.md documents it; the editor extensions
// mirror it.

// Custom requests (client → daemon).
const (
	MethodHello        = "bgagents/hello"
	MethodSpawn        = "bgagents/spawn"
	MethodList         = "bgagents/list"
	MethodGet          = "bgagents/get"
	MethodWait         = "bgagents/wait"
	MethodCancel       = "bgagents/cancel"
	MethodLog          = "bgagents/log"
	MethodUnfollow     = "bgagents/unfollow"
	MethodDiff         = "bgagents/diff"
	MethodMerge        = "bgagents/merge"
	MethodDiscard      = "bgagents/discard"
	MethodOpenWorktree = "bgagents/openWorktree"
	MethodStopDaemon   = "bgagents/stopDaemon"
	MethodMessage      = "bgagents/message"
	MethodAgents       = "bgagents/agents"
	MethodReview       = "bgagents/review"
	MethodPush         = "bgagents/push"
	MethodPullRequest  = "bgagents/pullRequest"
	MethodIntegrate    = "bgagents/integrate"
)

// Custom notifications (daemon → client).
const (
	NotifyAgentChanged = "bgagents/agentChanged"
	NotifyOutput       = "bgagents/output"
)

// CommandSendToAgent is the workspace/executeCommand command behind the
// "Send to background agent" code action.
const CommandSendToAgent = "bgagents.sendToAgent"

// Error codes beyond JSON-RPC's own (-32700 parse error, -32600 invalid
// request, -32601 method not found, -32602 invalid params, -32603 internal
// error). They sit in the range JSON-RPC reserves for servers.
const (
	CodeAgentNotFound  jsonrpc2.Code = -32040
	CodeAmbiguousAgent jsonrpc2.Code = -32041
	CodeInvalidState   jsonrpc2.Code = -32042
	CodeRefused        jsonrpc2.Code = -32043
	CodeConflict       jsonrpc2.Code = -32044
	CodeAgentMissing   jsonrpc2.Code = -32045
	CodeConfig         jsonrpc2.Code = -32046
	CodeNotARepository jsonrpc2.Code = -32047
	CodeNotReady       jsonrpc2.Code = -32048
	CodeShutdown       jsonrpc2.Code = -32049
	CodeExternal       jsonrpc2.Code = -32050
)

// HelloParams introduces a client.
type HelloParams struct {
	// Client names the client ("bgagents-cli", "vscode", "nvim").
	Client string `json:"client,omitempty"`
	// Version is the client's bgagents version.
	Version string `json:"version,omitempty"`
}

// HelloResult describes the daemon.
type HelloResult struct {
	Version string `json:"version"`
	Build   string `json:"build"`
	PID     int    `json:"pid"`
	Home    string `json:"home"`
	Socket  string `json:"socket"`
}

// SpawnParams asks for a new agent.
type SpawnParams struct {
	// Task is what the agent should do (required).
	Task string `json:"task"`
	// Repo is an absolute path inside the git repository (required).
	Repo string `json:"repo"`
	// Name is the agent's name (slug); default: derived from the task.
	Name string `json:"name,omitempty"`
	// Agent is a configured agent ([agents.NAME]); default: [defaults].agent.
	Agent string `json:"agent,omitempty"`
	// Model overrides the agent's model.
	Model string `json:"model,omitempty"`
	// Base is the branch or commit to start from; default: the branch
	// checked out in the main checkout.
	Base string `json:"base,omitempty"`
	// Timeout ("30m") stops the agent after that long; default: config.
	Timeout agents.Duration `json:"timeout,omitempty"`
	// Context is editor context (file, lines, text, diagnostic).
	Context *agents.Context `json:"context,omitempty"`
	// MaxTurns stops the agent after that many turns; default: config.
	MaxTurns int `json:"maxTurns,omitempty"`
	// BudgetUSD stops the agent when its cost passes it; default: config.
	BudgetUSD float64 `json:"budgetUsd,omitempty"`
	// BudgetTokens stops the agent when input+output tokens pass it.
	BudgetTokens int64 `json:"budgetTokens,omitempty"`
	// ReadOnly runs the agent in its vendor's read-only mode.
	ReadOnly bool `json:"readOnly,omitempty"`
	// After makes the agent a pipeline step: it stays queued until that
	// agent (a reference) succeeds, then starts on its branch with its
	// result in the prompt. Cannot be combined with Base.
	After string `json:"after,omitempty"`
	// Variants starts that many agents on the task (a fan-out, 1-10)
	// sharing a group id.
	Variants int `json:"variants,omitempty"`
	// Agents are the configured agents the variants take in turn; giving
	// several without Variants starts one variant each. Not with Agent.
	Agents []string `json:"agents,omitempty"`
}

// SpawnResult is the spawned agent; Agents lists every variant of a
// fan-out (Agent is the first).
type SpawnResult struct {
	Agent  *agents.Agent   `json:"agent"`
	Agents []*agents.Agent `json:"agents,omitempty"`
}

// ReviewParams starts a reviewer on an agent's work.
type ReviewParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	// Agent reviews; default: [review] agent, else the writer's agent.
	Agent string `json:"agent,omitempty"`
	Model string `json:"model,omitempty"`
}

// PushParams pushes an agent's branch; for bgagents/pullRequest it also
// opens a pull request with the GitHub CLI.
type PushParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	// Remote defaults to [push] remote, else "origin".
	Remote string `json:"remote,omitempty"`
	// Base is the pull request's base branch (default: the agent's base).
	Base string `json:"base,omitempty"`
	// Title of the pull request (default: the task's first line).
	Title string `json:"title,omitempty"`
	// Draft opens a draft pull request.
	Draft bool `json:"draft,omitempty"`
}

// IntegrateParams starts an agent on a branch that merges the branches of
// several agents, asked to resolve their conflicts.
type IntegrateParams struct {
	// IDs are two or more agent references.
	IDs  []string `json:"ids"`
	Repo string   `json:"repo,omitempty"`
	// Task defaults to a request to resolve the conflicts and keep every
	// change's intent.
	Task  string `json:"task,omitempty"`
	Name  string `json:"name,omitempty"`
	Agent string `json:"agent,omitempty"`
	Model string `json:"model,omitempty"`
	// Base defaults to the first agent's base.
	Base string `json:"base,omitempty"`
}

// AgentsParams asks which agents a repository can run.
type AgentsParams struct {
	// Repo is an absolute path inside the repository (required).
	Repo string `json:"repo"`
}

// AgentsResult lists the agents a spawn may name: the configured ones and
// every vendor CLI bgagents knows, installed or not.
type AgentsResult struct {
	// Default is the agent a spawn without one runs.
	Default string      `json:"default"`
	Agents  []AgentInfo `json:"agents"`
	// Review is the repository's [review] table: who reviews by default.
	Review ReviewDefaults `json:"review"`
	// Push says where push and pull requests go.
	Push PushDefaults `json:"push"`
}

// ReviewDefaults is [review]: the reviewer a review without an agent runs
// ("" means the writer's own agent) and whether reviews start by themselves.
type ReviewDefaults struct {
	Agent string `json:"agent,omitempty"`
	Model string `json:"model,omitempty"`
	Auto  bool   `json:"auto"`
}

// PushDefaults is where bgagents/push and bgagents/pullRequest go.
type PushDefaults struct {
	// Remote is the default remote ([push] remote, else "origin").
	Remote string `json:"remote"`
	// Remotes are the repository's remotes.
	Remotes []string `json:"remotes"`
	// GH is set when the GitHub CLI is on the daemon's PATH (whether it is
	// logged in is only known when a pull request is asked for).
	GH bool `json:"gh"`
}

// AgentInfo describes one agent a spawn may name.
type AgentInfo struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	Model    string `json:"model,omitempty"`
	// Configured is set for [agents.NAME] tables.
	Configured bool `json:"configured"`
	// Installed says whether its executable was found.
	Installed bool `json:"installed"`
	// Problem says why it cannot run (not installed: how to install it).
	Problem string `json:"problem,omitempty"`
	// ReadOnly is set when it has a read-only mode, so it can review.
	ReadOnly bool `json:"readOnly"`
}

// MessageParams sends a follow-up to an agent that stopped (needs_input,
// succeeded or failed): its session is resumed with Text.
type MessageParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	Text string `json:"text"`
	// AllowDenied allows, for the resumed run, the tools the agent was
	// refused (its questions).
	AllowDenied bool `json:"allowDenied,omitempty"`
}

// AgentResult carries one agent record.
type AgentResult struct {
	Agent *agents.Agent `json:"agent"`
}

// ListParams selects agents.
type ListParams struct {
	// Repo limits the list to one repository (any path inside it); empty
	// lists every repository.
	Repo string `json:"repo,omitempty"`
	// States limits the list to these states.
	States []agents.State `json:"states,omitempty"`
}

// ListResult is a list of agents, newest first.
type ListResult struct {
	Agents []*agents.Agent `json:"agents"`
}

// IDParams names one agent: a full id, a unique id prefix or a name. Repo
// (optional) prefers that repository's agent when names repeat.
type IDParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
}

// GetResult is an agent and its state history.
type GetResult struct {
	Agent   *agents.Agent       `json:"agent"`
	History []agents.Transition `json:"history"`
}

// LogParams asks for an agent's events.
type LogParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	// From is the first sequence number wanted (default 1).
	From int64 `json:"from,omitempty"`
	// Follow makes the daemon send later events as bgagents/output
	// notifications to this session until bgagents/unfollow.
	Follow bool `json:"follow,omitempty"`
}

// LogResult holds events in order; Next is the From of the next page.
type LogResult struct {
	ID     string         `json:"id"`
	Events []agents.Event `json:"events"`
	Next   int64          `json:"next"`
	// More is set when the page was cut at the limit: ask again from Next.
	More  bool         `json:"more"`
	State agents.State `json:"state"`
}

// DiffParams asks for an agent's changes against its base commit.
type DiffParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	// Stat returns `git diff --stat` instead of the patch.
	Stat bool `json:"stat,omitempty"`
}

// DiffResult is the diff of an agent's work against its base commit.
type DiffResult struct {
	ID         string `json:"id"`
	Repo       string `json:"repo"`
	Worktree   string `json:"worktree"`
	Branch     string `json:"branch"`
	BaseCommit string `json:"baseCommit"`
	Head       string `json:"head"`
	// Uncommitted is true when the worktree still exists and has changes
	// not yet committed: Diff, Stat and Files then compare BaseCommit with
	// the worktree's content (tracked and untracked files, .gitignore
	// respected), so the right side of a file is the file on disk under
	// Worktree rather than Head's version.
	Uncommitted bool            `json:"uncommitted,omitempty"`
	Diff        string          `json:"diff"`
	Stat        agents.DiffStat `json:"stat"`
	Files       []FileChange    `json:"files"`
}

// FileChange is one file changed by an agent.
type FileChange struct {
	Path      string `json:"path"`
	OldPath   string `json:"oldPath,omitempty"`
	Status    string `json:"status"` // A, M, D, R
	Additions int    `json:"additions"`
	Deletions int    `json:"deletions"`
}

// MergeParams lands an agent's branch into its base.
type MergeParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	// Strategy is "merge" (a merge commit, the default) or "squash".
	Strategy string `json:"strategy,omitempty"`
	// Into is the branch to land in; default: the agent's base when it is
	// a branch, else the branch checked out in the main checkout.
	Into string `json:"into,omitempty"`
}

// DiscardParams throws an agent's work away.
type DiscardParams struct {
	ID   string `json:"id"`
	Repo string `json:"repo,omitempty"`
	// Force discards uncommitted or unmerged work, and cancels a live agent.
	Force bool `json:"force,omitempty"`
}

// OpenWorktreeResult says where an agent's worktree is.
type OpenWorktreeResult struct {
	Path string `json:"path"`
	URI  string `json:"uri"`
}

// AgentChangedParams is a full snapshot of an agent that changed.
type AgentChangedParams struct {
	Agent *agents.Agent `json:"agent"`
}

// OutputParams carries new events of an agent this session follows.
type OutputParams struct {
	ID     string         `json:"id"`
	Events []agents.Event `json:"events"`
}

// SendToAgentArgs is the argument of the bgagents.sendToAgent command
// (workspace/executeCommand); the code action fills uri, range, text and
// diagnostic; editors may add task, agent and model.
type SendToAgentArgs struct {
	URI        string    `json:"uri"`
	Range      *LSPRange `json:"range,omitempty"`
	Text       string    `json:"text,omitempty"`
	Diagnostic string    `json:"diagnostic,omitempty"`
	Task       string    `json:"task,omitempty"`
	Agent      string    `json:"agent,omitempty"`
	Model      string    `json:"model,omitempty"`
	Name       string    `json:"name,omitempty"`
	Base       string    `json:"base,omitempty"`
}

// LSPRange is an LSP range (zero-based lines and UTF-16 characters).
type LSPRange struct {
	Start LSPPos `json:"start"`
	End   LSPPos `json:"end"`
}

// LSPPos is an LSP position.
type LSPPos struct {
	Line      uint32 `json:"line"`
	Character uint32 `json:"character"`
}

// ExperimentalCapabilities is what a client declares under
// capabilities.experimental.bgagents in initialize.
type ExperimentalCapabilities struct {
	// Notifications: the client handles bgagents/agentChanged and
	// bgagents/output; without it the daemon tells the user about finished
	// agents with window/showMessage.
	Notifications bool `json:"notifications"`
}

// MethodSpec describes one custom method for the generated editor
// bindings (internal/protogen): its name and zero values of its params and
// result types (Result is nil for notifications).
type MethodSpec struct {
	Method string
	Params any
	Result any
}

// Requests lists every custom request, with its params and result types.
var Requests = []MethodSpec{
	{MethodHello, HelloParams{}, HelloResult{}},
	{MethodSpawn, SpawnParams{}, SpawnResult{}},
	{MethodList, ListParams{}, ListResult{}},
	{MethodGet, IDParams{}, GetResult{}},
	{MethodWait, IDParams{}, AgentResult{}},
	{MethodCancel, IDParams{}, AgentResult{}},
	{MethodLog, LogParams{}, LogResult{}},
	{MethodUnfollow, IDParams{}, OKResult{}},
	{MethodDiff, DiffParams{}, DiffResult{}},
	{MethodMerge, MergeParams{}, AgentResult{}},
	{MethodDiscard, DiscardParams{}, AgentResult{}},
	{MethodOpenWorktree, IDParams{}, OpenWorktreeResult{}},
	{MethodMessage, MessageParams{}, AgentResult{}},
	{MethodAgents, AgentsParams{}, AgentsResult{}},
	{MethodReview, ReviewParams{}, AgentResult{}},
	{MethodPush, PushParams{}, AgentResult{}},
	{MethodPullRequest, PushParams{}, AgentResult{}},
	{MethodIntegrate, IntegrateParams{}, AgentResult{}},
	{MethodStopDaemon, struct{}{}, StopResult{}},
}

// Notifications lists every custom notification, with its params type.
var Notifications = []MethodSpec{
	{NotifyAgentChanged, AgentChangedParams{}, nil},
	{NotifyOutput, OutputParams{}, nil},
}

// ErrorCodes names the daemon's own JSON-RPC error codes.
var ErrorCodes = []struct {
	Name string
	Code jsonrpc2.Code
}{
	{"AgentNotFound", CodeAgentNotFound},
	{"AmbiguousAgent", CodeAmbiguousAgent},
	{"InvalidState", CodeInvalidState},
	{"Refused", CodeRefused},
	{"Conflict", CodeConflict},
	{"AgentMissing", CodeAgentMissing},
	{"Config", CodeConfig},
	{"NotARepository", CodeNotARepository},
	{"NotReady", CodeNotReady},
	{"Shutdown", CodeShutdown},
	{"External", CodeExternal},
}

// OKResult is the result of bgagents/unfollow.
type OKResult struct {
	OK bool `json:"ok"`
}

// StopResult is the result of bgagents/stopDaemon.
type StopResult struct {
	Stopping bool `json:"stopping"`
}
