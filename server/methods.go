package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"go.lsp.dev/jsonrpc2"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/worktree"
)

// routes maps every request method the daemon answers to its handler;
// anything else is MethodNotFound.
var routes map[string]handlerFunc

func init() {
	routes = map[string]handlerFunc{
		// LSP lifecycle and features (lsp.go).
		"initialize":               (*Session).initialize,
		"shutdown":                 (*Session).shutdown,
		"textDocument/codeAction":  (*Session).codeAction,
		"workspace/executeCommand": (*Session).executeCommand,
		MethodHello:                (*Session).hello,
		MethodSpawn:                (*Session).spawn,
		MethodList:                 (*Session).list,
		MethodGet:                  (*Session).get,
		MethodWait:                 (*Session).wait,
		MethodCancel:               (*Session).cancelAgent,
		MethodLog:                  (*Session).logEvents,
		MethodUnfollow:             (*Session).unfollow,
		MethodDiff:                 (*Session).diff,
		MethodMerge:                (*Session).merge,
		MethodDiscard:              (*Session).discard,
		MethodOpenWorktree:         (*Session).openWorktree,
		MethodStopDaemon:           (*Session).stopDaemon,
		MethodMessage:              (*Session).message,
		MethodAgents:               (*Session).agentsList,
		MethodReview:               (*Session).review,
		MethodPush:                 (*Session).push,
		MethodPullRequest:          (*Session).pullRequest,
		MethodIntegrate:            (*Session).integrate,
	}
}

func (s *Session) route(method string) (handlerFunc, bool) {
	h, ok := routes[method]
	return h, ok
}

func (s *Session) manager(ctx context.Context) (*agents.Manager, error) {
	return s.srv.Manager(ctx)
}

func (s *Session) hello(ctx context.Context, params json.RawMessage) (any, error) {
	var p HelloParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	return HelloResult{Version: Version, Build: Build(), PID: os.Getpid(), Home: s.srv.opts.Paths.State, Socket: s.srv.opts.Paths.Socket()}, nil
}

func (s *Session) stopDaemon(ctx context.Context, params json.RawMessage) (any, error) {
	if err := decode(params, &struct{}{}); err != nil {
		return nil, err
	}
	s.srv.log.Info("stop requested by a client")
	// handle stops the server once this reply is written.
	return StopResult{Stopping: true}, nil
}

func (s *Session) spawn(ctx context.Context, params json.RawMessage) (any, error) {
	var p SpawnParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	as, err := s.spawnAgents(ctx, p)
	if err != nil {
		return nil, err
	}
	res := SpawnResult{Agent: as[0]}
	if len(as) > 1 {
		res.Agents = as
	}
	return res, nil
}

// spawnAgent spawns and, for LSP clients that support it, reports the
// worktree being prepared as work-done progress.
func (s *Session) spawnAgent(ctx context.Context, p SpawnParams) (*agents.Agent, error) {
	as, err := s.spawnAgents(ctx, p)
	if err != nil {
		return nil, err
	}
	return as[0], nil
}

func (s *Session) spawnAgents(ctx context.Context, p SpawnParams) ([]*agents.Agent, error) {
	if p.Repo != "" && !filepath.IsAbs(p.Repo) {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"repo\" must be an absolute path, not %q", p.Repo)
	}
	mgr, err := s.manager(ctx)
	if err != nil {
		return nil, err
	}
	as, err := mgr.SpawnGroup(ctx, agents.SpawnRequest{
		Task: p.Task, Name: p.Name, Agent: p.Agent, Model: p.Model, Repo: p.Repo, Base: p.Base,
		Timeout: time.Duration(p.Timeout), Context: p.Context,
		MaxTurns: p.MaxTurns, BudgetUSD: p.BudgetUSD, BudgetTokens: p.BudgetTokens, ReadOnly: p.ReadOnly,
		After: p.After, Variants: p.Variants, Agents: p.Agents,
	})
	if err != nil {
		return nil, err
	}
	for _, a := range as {
		s.beginProgress(a)
	}
	return as, nil
}

func (s *Session) review(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *ReviewParams) (any, error) {
		rev, err := mgr.Review(ctx, a.ID, a.Repo, p.Agent, p.Model)
		if err == nil {
			s.beginProgress(rev)
		}
		return agentResult(rev, err)
	})
}

func (s *Session) push(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *PushParams) (any, error) {
		return agentResult(mgr.Push(ctx, a.ID, a.Repo, agents.PushOptions{Remote: p.Remote}))
	})
}

func (s *Session) pullRequest(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *PushParams) (any, error) {
		return agentResult(mgr.PullRequest(ctx, a.ID, a.Repo, agents.PushOptions{Remote: p.Remote, Base: p.Base, Title: p.Title, Draft: p.Draft}))
	})
}

func (s *Session) integrate(ctx context.Context, params json.RawMessage) (any, error) {
	var p IntegrateParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if len(p.IDs) < 2 {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"ids\" needs at least two agents")
	}
	if p.Repo != "" && !filepath.IsAbs(p.Repo) {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"repo\" must be an absolute path, not %q", p.Repo)
	}
	mgr, err := s.manager(ctx)
	if err != nil {
		return nil, err
	}
	repo := p.Repo
	if repo != "" {
		if repo, err = worktree.RepoRoot(ctx, repo); err != nil {
			return nil, agents.Errorf(agents.ErrNotRepo, "%s is not inside a git repository: %w", p.Repo, err)
		}
	}
	a, err := mgr.Integrate(ctx, p.IDs, agents.SpawnRequest{Task: p.Task, Name: p.Name, Agent: p.Agent, Model: p.Model, Repo: repo, Base: p.Base})
	if err == nil {
		s.beginProgress(a)
	}
	return agentResult(a, err)
}

func (s *Session) beginProgress(a *agents.Agent) {
	s.mu.Lock()
	ok := s.progress
	s.mu.Unlock()
	if !ok || !a.State.Live() {
		return
	}
	token := "bgagents-" + a.ID
	// window/workDoneProgress/create is a call to the client: never make
	// it from the read loop (this runs in a request goroutine).
	ctx, cancel := context.WithTimeout(s.ctx, 5*time.Second)
	defer cancel()
	if _, err := s.conn.Call(ctx, "window/workDoneProgress/create", map[string]any{"token": token}, nil); err != nil {
		return
	}
	_ = s.conn.Notify(s.ctx, "$/progress", map[string]any{"token": token, "value": map[string]any{
		"kind": "begin", "title": "bgagents: preparing " + a.Name, "message": "queued", "cancellable": true,
	}})
	s.mu.Lock()
	s.spawned[a.ID] = token
	s.mu.Unlock()
	// Steps published before the token existed are summed up here; later
	// ones arrive as reports. An agent that got past provisioning
	// meanwhile ends the progress at once.
	if mgr, err := s.manager(ctx); err == nil {
		if cur, err := mgr.Store().Get(ctx, a.ID); err == nil {
			switch cur.State {
			case agents.StateQueued:
				msg := "queued: waiting for a free slot"
				if cur.After != "" {
					msg = "queued: waiting for the agent it follows to succeed"
					if dep, err := mgr.Store().Get(ctx, cur.After); err == nil {
						msg = "queued: waiting for " + dep.Name + " to succeed"
					}
				}
				_ = s.conn.Notify(s.ctx, "$/progress", progressParams(token, &agents.ProgressNotice{Message: msg}))
			case agents.StateProvisioning:
				_ = s.conn.Notify(s.ctx, "$/progress", progressParams(token, &agents.ProgressNotice{Message: "creating worktree " + cur.Worktree}))
			default:
				s.mu.Lock()
				delete(s.spawned, a.ID)
				s.mu.Unlock()
				_ = s.conn.Notify(s.ctx, "$/progress", progressParams(token, &agents.ProgressNotice{Message: string(cur.State), Done: true}))
			}
		}
	}
}

func (s *Session) agentsList(ctx context.Context, params json.RawMessage) (any, error) {
	var p AgentsParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	if p.Repo == "" {
		return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"repo\" is required (a path inside the repository)")
	}
	repo, err := repoRoot(ctx, p.Repo)
	if err != nil {
		return nil, err
	}
	cfg, err := config.Load(repo)
	if err != nil {
		return nil, agents.Errorf(agents.ErrConfig, "%w", err)
	}
	res := AgentsResult{Default: cfg.DefaultAgent(), Agents: []AgentInfo{},
		Review: ReviewDefaults{Agent: cfg.Review.Agent, Model: cfg.Review.Model, Auto: cfg.Review.Auto},
		Push:   PushDefaults{Remote: cfg.PushRemote(), Remotes: []string{}}}
	if out, err := worktree.Git(ctx, repo, "remote"); err == nil {
		res.Push.Remotes = append(res.Push.Remotes, strings.Fields(out)...)
	}
	if _, err := exec.LookPath("gh"); err == nil {
		res.Push.GH = true
	}
	seen := map[string]bool{}
	add := func(name string, configured bool) {
		spec, err := cfg.Spec(name)
		if err != nil {
			return
		}
		info := AgentInfo{Name: name, Provider: spec.Provider, Model: spec.Model, Configured: configured}
		if prov, err := providers.Get(spec.Provider); err == nil {
			_, _, err := prov.Command(spec, providers.Task{Prompt: "x", Worktree: repo})
			info.Installed = err == nil || !errors.Is(err, providers.ErrNotInstalled)
			if err != nil {
				info.Problem = err.Error()
			}
			_, _, err = prov.Command(spec, providers.Task{Prompt: "x", Worktree: repo, ReadOnly: true})
			info.ReadOnly = err == nil || errors.Is(err, providers.ErrNotInstalled)
		}
		seen[name] = true
		res.Agents = append(res.Agents, info)
	}
	for name := range cfg.Agents {
		add(name, true)
	}
	sort.Slice(res.Agents, func(i, j int) bool { return res.Agents[i].Name < res.Agents[j].Name })
	for _, name := range providers.Names() {
		if name != "command" && !seen[name] {
			add(name, false)
		}
	}
	return res, nil
}

func (s *Session) list(ctx context.Context, params json.RawMessage) (any, error) {
	var p ListParams
	if err := decode(params, &p); err != nil {
		return nil, err
	}
	mgr, err := s.manager(ctx)
	if err != nil {
		return nil, err
	}
	repo := ""
	if p.Repo != "" {
		if repo, err = repoRoot(ctx, p.Repo); err != nil {
			return nil, err
		}
	}
	as, err := mgr.List(ctx, repo, p.States)
	if err != nil {
		return nil, err
	}
	if as == nil {
		as = []*agents.Agent{}
	}
	return ListResult{Agents: as}, nil
}

func repoRoot(ctx context.Context, dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"repo\" must be an absolute path, not %q", dir)
	}
	root, err := worktree.RepoRoot(ctx, dir)
	if err != nil {
		return "", agents.Errorf(agents.ErrNotRepo, "%s is not inside a git repository: %w", dir, err)
	}
	return root, nil
}

// resolve decodes IDParams-like params and finds the agent.
func (s *Session) resolve(ctx context.Context, id, repo string) (*agents.Manager, *agents.Agent, error) {
	if id == "" {
		return nil, nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"id\" is required (an agent id, id prefix or name)")
	}
	mgr, err := s.manager(ctx)
	if err != nil {
		return nil, nil, err
	}
	if repo != "" {
		if r, err := worktree.RepoRoot(ctx, repo); err == nil {
			repo = r
		}
	}
	a, err := mgr.Resolve(ctx, id, repo)
	if err != nil {
		return nil, nil, err
	}
	return mgr, a, nil
}

// agentRef is implemented by params that name one agent.
type agentRef interface{ ref() (id, repo string) }

func (p *IDParams) ref() (string, string)      { return p.ID, p.Repo }
func (p *LogParams) ref() (string, string)     { return p.ID, p.Repo }
func (p *DiffParams) ref() (string, string)    { return p.ID, p.Repo }
func (p *MergeParams) ref() (string, string)   { return p.ID, p.Repo }
func (p *DiscardParams) ref() (string, string) { return p.ID, p.Repo }
func (p *MessageParams) ref() (string, string) { return p.ID, p.Repo }
func (p *ReviewParams) ref() (string, string)  { return p.ID, p.Repo }
func (p *PushParams) ref() (string, string)    { return p.ID, p.Repo }

// onAgent decodes params of type P, finds the agent they name and runs do.
func onAgent[P any, PP interface {
	*P
	agentRef
}](ctx context.Context, s *Session, params json.RawMessage, do func(*agents.Manager, *agents.Agent, *P) (any, error)) (any, error) {
	p := PP(new(P))
	if err := decode(params, p); err != nil {
		return nil, err
	}
	id, repo := p.ref()
	mgr, a, err := s.resolve(ctx, id, repo)
	if err != nil {
		return nil, err
	}
	return do(mgr, a, (*P)(p))
}

// agentResult wraps what a manager operation returned.
func agentResult(a *agents.Agent, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return AgentResult{Agent: a}, nil
}

func (s *Session) get(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, _ *IDParams) (any, error) {
		h, err := mgr.Store().History(ctx, a.ID)
		if err != nil {
			return nil, err
		}
		return GetResult{Agent: a, History: h}, nil
	})
}

func (s *Session) wait(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, _ *IDParams) (any, error) {
		return agentResult(mgr.Wait(ctx, a.ID))
	})
}

func (s *Session) cancelAgent(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, _ *IDParams) (any, error) {
		return agentResult(mgr.Cancel(ctx, a.ID, ""))
	})
}

func (s *Session) logEvents(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *LogParams) (any, error) {
		if p.From < 0 {
			return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"from\" must not be negative")
		}
		var follow func(int64)
		if p.Follow {
			follow = func(next int64) {
				s.mu.Lock()
				s.follows[a.ID] = next
				s.mu.Unlock()
			}
		}
		evs, err := mgr.Log(ctx, a.ID, p.From, follow)
		if err != nil {
			return nil, err
		}
		if evs == nil {
			evs = []agents.Event{}
		}
		next := max(p.From, 1)
		if len(evs) > 0 {
			next = evs[len(evs)-1].Seq + 1
		}
		cur, err := mgr.Store().Get(ctx, a.ID)
		if err != nil {
			return nil, err
		}
		return LogResult{ID: a.ID, Events: evs, Next: next, More: len(evs) >= agents.MaxLogEvents, State: cur.State}, nil
	})
}

func (s *Session) unfollow(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(_ *agents.Manager, a *agents.Agent, _ *IDParams) (any, error) {
		s.mu.Lock()
		delete(s.follows, a.ID)
		s.mu.Unlock()
		return OKResult{OK: true}, nil
	})
}

func (s *Session) diff(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *DiffParams) (any, error) {
		v, err := mgr.Diff(ctx, a, p.Stat)
		if err != nil {
			return nil, err
		}
		res := DiffResult{ID: a.ID, Repo: a.Repo, Worktree: a.Worktree, Branch: a.Branch, BaseCommit: a.BaseCommit,
			Head: v.Head, Uncommitted: v.Uncommitted, Diff: v.Text, Stat: v.Stat, Files: []FileChange{}}
		for _, f := range v.Files {
			res.Files = append(res.Files, FileChange{Path: f.Path, OldPath: f.OldPath, Status: f.Status, Additions: f.Additions, Deletions: f.Deletions})
		}
		return res, nil
	})
}

func (s *Session) merge(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *MergeParams) (any, error) {
		squash := false
		switch p.Strategy {
		case "", "merge":
		case "squash":
			squash = true
		default:
			return nil, jsonrpc2.Errorf(jsonrpc2.InvalidParams, "invalid params: field \"strategy\" must be \"merge\" or \"squash\", not %q", p.Strategy)
		}
		return agentResult(mgr.Merge(ctx, a.ID, "", squash, p.Into))
	})
}

func (s *Session) message(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *MessageParams) (any, error) {
		return agentResult(mgr.Message(ctx, a.ID, "", p.Text, p.AllowDenied))
	})
}

func (s *Session) discard(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(mgr *agents.Manager, a *agents.Agent, p *DiscardParams) (any, error) {
		return agentResult(mgr.Discard(ctx, a.ID, "", p.Force))
	})
}

func (s *Session) openWorktree(ctx context.Context, params json.RawMessage) (any, error) {
	return onAgent(ctx, s, params, func(_ *agents.Manager, a *agents.Agent, _ *IDParams) (any, error) {
		if a.State.Landed() || a.Cleaned {
			return nil, agents.Errorf(agents.ErrState, "agent %s has no worktree any more (%s)", a.Name, cleanedWhy(a))
		}
		if _, err := os.Stat(a.Worktree); err != nil {
			if a.State == agents.StateQueued || a.State == agents.StateProvisioning {
				return nil, agents.Errorf(agents.ErrState, "the worktree of %s is not ready yet (%s); try again in a moment", a.Name, a.State)
			}
			return nil, agents.Errorf(agents.ErrState, "the worktree %s of %s is missing", a.Worktree, a.Name)
		}
		return OpenWorktreeResult{Path: a.Worktree, URI: fileURI(a.Worktree)}, nil
	})
}

func cleanedWhy(a *agents.Agent) string {
	if a.Cleaned {
		return "it changed nothing, so it was cleaned up"
	}
	return fmt.Sprintf("it was %s", a.State)
}

// fileURI is the file:// URI of an absolute path, percent-encoded.
func fileURI(path string) string {
	return (&url.URL{Scheme: "file", Path: path}).String()
}
