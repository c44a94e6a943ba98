package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/internal/config"
	"github.com/bgagents/bgagents/server"
	"github.com/bgagents/bgagents/worktree"
)

type usageError struct{ error }

func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag") || strings.Contains(msg, "arg(s)") ||
		strings.HasPrefix(msg, "invalid argument") || strings.HasPrefix(msg, "flag needs an argument")
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "bgagents",
		Short: "Run AI coding agents in the background, each in its own git worktree",
		Long: `bgagents hands tasks to AI coding agents that run in the background, each in
its own git worktree on its own branch, supervised by a per-user daemon that
survives terminals, editors and its own restarts.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		spawnCmd(), lsCmd(), showCmd(), logsCmd(), diffCmd(), openCmd(), msgCmd(), cancelCmd(), mergeCmd(), rmCmd(),
		reviewCmd(), pushCmd(), prCmd(), integrateCmd(),
		daemonCmd(), lspCmd(), doctorCmd(), versionCmd(), shimCmd(),
	)
	return root
}

// connect dials the daemon (starting it when needed) and checks that it is
// the same build as this binary.
func connect(ctx context.Context) (*server.Client, error) {
	p, err := server.DefaultPaths()
	if err != nil {
		return nil, err
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	conn, err := server.Dial(ctx, p, []string{exe, "daemon"})
	if err != nil {
		return nil, err
	}
	c := server.NewClient(ctx, conn)
	var hello server.HelloResult
	if err := c.Call(ctx, server.MethodHello, server.HelloParams{Client: "bgagents-cli", Version: server.Version}, &hello); err != nil {
		c.Close()
		return nil, fmt.Errorf("talk to the daemon on %s: %w", p.Socket(), err)
	}
	if hello.Build != server.Build() && os.Getenv("BGAGENTS_ALLOW_SKEW") == "" {
		c.Close()
		return nil, fmt.Errorf("the running daemon (pid %d, version %s, build %s) is not this binary's build (%s, build %s); stop it with `bgagents daemon --stop` (agents keep running) and try again",
			hello.PID, hello.Version, hello.Build, server.Version, server.Build())
	}
	return c, nil
}

// call connects, makes one request and closes.
func call(ctx context.Context, method string, params, result any) error {
	c, err := connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return c.Call(ctx, method, params, result)
}

// waitAgent waits until the agent stops (bgagents/wait). When the daemon
// goes away meanwhile (a restart, an upgrade, a crash) it reconnects,
// starting a daemon that re-adopts the agent, and keeps waiting.
func waitAgent(ctx context.Context, c *server.Client, id string) (*agents.Agent, error) {
	for {
		var res server.AgentResult
		err := c.Call(ctx, server.MethodWait, server.IDParams{ID: id}, &res)
		if err == nil {
			return res.Agent, nil
		}
		if !errors.Is(err, server.ErrDisconnected) {
			return nil, err
		}
		if err := reconnect(ctx, c, id); err != nil {
			return nil, err
		}
	}
}

// reconnect replaces c, whose daemon went away (a restart), with a new
// connection, trying three times.
func reconnect(ctx context.Context, c *server.Client, id string) error {
	c.Close()
	nc, err := connect(ctx)
	for failures := 1; err != nil; failures++ {
		if failures >= 3 || ctx.Err() != nil {
			return fmt.Errorf("lost the daemon while waiting for %s, and could not reconnect: %w", id, err)
		}
		nc, err = connect(ctx)
	}
	*c = *nc
	return nil
}

// waitProgress waits for the agent like waitAgent and meanwhile prints, to
// w, how its worktree is being prepared (its progress events), when it
// starts, and when the step it waits for needs an answer.
func waitProgress(ctx context.Context, c *server.Client, a *agents.Agent, w io.Writer) (*agents.Agent, error) {
	var from int64 = 1
	last := a.State
	if a.After != "" {
		var dep server.AgentResult
		if err := c.Call(ctx, server.MethodGet, server.IDParams{ID: a.After}, &dep); err == nil && dep.Agent.State == agents.StateNeedsInput {
			fmt.Fprintf(w, "%s: waiting for %s, which needs input: answer with bgagents msg %s \"...\"\n", a.Name, dep.Agent.Name, dep.Agent.Name)
		}
	}
	for {
		var lr server.LogResult
		if err := c.Call(ctx, server.MethodLog, server.LogParams{ID: a.ID, From: from, Follow: true}, &lr); err == nil {
			from = printProgress(w, a.Name, lr.Events, from)
		} else if !errors.Is(err, server.ErrDisconnected) {
			return nil, err
		}
		type waited struct {
			a   *agents.Agent
			err error
		}
		done := make(chan waited, 1)
		go func() {
			var res server.AgentResult
			err := c.Call(ctx, server.MethodWait, server.IDParams{ID: a.ID}, &res)
			done <- waited{res.Agent, err}
		}()
		var err error
	wait:
		for {
			select {
			case r := <-done:
				if r.err == nil {
					_ = c.Call(ctx, server.MethodUnfollow, server.IDParams{ID: a.ID}, nil)
					return r.a, nil
				}
				if err = r.err; !errors.Is(err, server.ErrDisconnected) {
					return nil, err
				}
				break wait
			case n := <-c.Notes():
				switch n.Method {
				case server.NotifyOutput:
					var p server.OutputParams
					if json.Unmarshal(n.Params, &p) == nil && p.ID == a.ID {
						from = printProgress(w, a.Name, p.Events, from)
					}
				case server.NotifyAgentChanged:
					var p server.AgentChangedParams
					if json.Unmarshal(n.Params, &p) != nil || p.Agent == nil {
						continue
					}
					switch got := p.Agent; {
					case got.ID == a.ID && got.State != last:
						last = got.State
						if got.State == agents.StateRunning {
							fmt.Fprintf(w, "%s: running\n", a.Name)
						}
					case got.ID == a.After && got.State == agents.StateNeedsInput:
						fmt.Fprintf(w, "%s: waiting for %s, which needs input: answer with bgagents msg %s \"...\"\n", a.Name, got.Name, got.Name)
					}
				}
			}
		}
		if err := reconnect(ctx, c, a.ID); err != nil {
			return nil, err
		}
	}
}

// printProgress prints the progress events from seq from on and returns
// the next sequence number wanted.
func printProgress(w io.Writer, name string, evs []agents.Event, from int64) int64 {
	for _, e := range evs {
		if e.Seq < from {
			continue
		}
		from = e.Seq + 1
		if e.Kind == providers.KindProgress {
			fmt.Fprintf(w, "%s: %s\n", name, e.Text)
		}
	}
	return from
}

// repoFlag resolves --repo (default: the current directory) to an absolute
// path. Whether it is a repository is the daemon's to say.
func repoFlag(dir string) (string, error) {
	if dir == "" {
		wd, err := os.Getwd()
		if err != nil {
			return "", fmt.Errorf("current directory: %w", err)
		}
		dir = wd
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("--repo %s: %w", dir, err)
	}
	return abs, nil
}

// currentRepo is the repository of the current directory, or "" outside
// one (used to prefer that repo's agent when names repeat).
func currentRepo(ctx context.Context) string {
	wd, err := os.Getwd()
	if err != nil {
		return ""
	}
	root, err := worktree.RepoRoot(ctx, wd)
	if err != nil {
		return ""
	}
	return root
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func spawnCmd() *cobra.Command {
	var repo, model, name, base, after string
	var agentNames []string
	var timeout time.Duration
	var wait, asJSON, readOnly bool
	var maxTurns, variants int
	var budgetUSD float64
	var budgetTokens int64
	c := &cobra.Command{
		Use:   "spawn [flags] TASK...",
		Short: "Start an agent on a task in its own worktree; prints its id",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			dir, err := repoFlag(repo)
			if err != nil {
				return err
			}
			c, err := connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var res server.SpawnResult
			p := server.SpawnParams{
				Task: strings.Join(args, " "), Repo: dir, Model: model, Name: name, Base: base, Timeout: agents.Duration(timeout),
				MaxTurns: maxTurns, BudgetUSD: budgetUSD, BudgetTokens: budgetTokens, ReadOnly: readOnly,
				After: after, Variants: variants,
			}
			if len(agentNames) == 1 {
				p.Agent = agentNames[0]
			} else {
				p.Agents = agentNames
			}
			if err := c.Call(ctx, server.MethodSpawn, p, &res); err != nil {
				return err
			}
			all := res.Agents
			if len(all) == 0 {
				all = []*agents.Agent{res.Agent}
			}
			if wait {
				for i, a := range all {
					var done *agents.Agent
					if asJSON {
						done, err = waitAgent(ctx, c, a.ID)
					} else {
						how := "waiting…"
						if a.After != "" {
							how = "waiting for the step before it…"
						}
						fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s on %s, %s\n", a.ID, a.Name, a.Branch, how)
						done, err = waitProgress(ctx, c, a, cmd.ErrOrStderr())
					}
					if err != nil {
						return err
					}
					all[i] = done
				}
			}
			if asJSON {
				var v any = all[0]
				if len(all) > 1 {
					v = all
				}
				if err := printJSON(cmd.OutOrStdout(), v); err != nil {
					return err
				}
			} else {
				for _, a := range all {
					fmt.Fprintln(cmd.OutOrStdout(), a.ID)
				}
			}
			failed := false
			for _, a := range all {
				if !wait || a.State == agents.StateSucceeded {
					continue
				}
				failed = true
				if asJSON {
					continue
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "agent %s %s: %s\n", a.Name, a.State, a.Error)
				if a.State == agents.StateNeedsInput {
					hint := ""
					for _, q := range a.Questions {
						if q.Tool != "" {
							hint = " (add --allow to allow what it was refused)"
						}
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "answer with: bgagents msg %s \"...\"%s\n", a.Name, hint)
				}
			}
			if failed {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&repo, "repo", "", "repository (default: the one containing the current directory)")
	f.StringArrayVar(&agentNames, "agent", nil, "agent to run, from [agents.NAME] in .bgagents.toml (default: [defaults].agent); repeat it to give variants different agents")
	f.StringVar(&model, "model", "", "model for the agent")
	f.StringVar(&name, "name", "", "agent name (default: from the task); the branch is bgagents/NAME")
	f.StringVar(&base, "base", "", "branch or commit to start from (default: the branch checked out)")
	f.DurationVar(&timeout, "timeout", 0, "stop the agent after this long, e.g. 30m (default: config)")
	f.BoolVar(&wait, "wait", false, "wait until the agent ends; exit non-zero unless it succeeded")
	f.BoolVar(&asJSON, "json", false, "print the agent record as JSON")
	f.IntVar(&maxTurns, "max-turns", 0, "stop the agent after this many turns (default: config)")
	f.Float64Var(&budgetUSD, "budget-usd", 0, "stop the agent when its cost passes this many US dollars (default: config)")
	f.Int64Var(&budgetTokens, "budget-tokens", 0, "stop the agent when its input+output tokens pass this (default: config)")
	f.BoolVar(&readOnly, "read-only", false, "run the agent in its read-only mode (it may not change files)")
	f.StringVar(&after, "after", "", "pipeline step: wait until agent ID succeeds, then start on its branch with its result in the prompt")
	f.IntVarP(&variants, "variants", "n", 0, "fan-out: start this many agents on the task (default: one per --agent)")
	f.SetInterspersed(false)
	return c
}

func lsCmd() *cobra.Command {
	var repo string
	var all, asJSON bool
	c := &cobra.Command{
		Use:   "ls",
		Short: "List agents of this repository (--all: of every repository)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := server.ListParams{}
			if !all {
				dir, err := repoFlag(repo)
				if err != nil {
					return err
				}
				p.Repo = dir
			}
			var res server.ListResult
			if err := call(cmd.Context(), server.MethodList, p, &res); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res.Agents)
			}
			return printTable(cmd.OutOrStdout(), res.Agents, all)
		},
	}
	c.Flags().StringVar(&repo, "repo", "", "repository (default: the one containing the current directory)")
	c.Flags().BoolVar(&all, "all", false, "agents of every repository")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func printTable(w io.Writer, as []*agents.Agent, withRepo bool) error {
	if len(as) == 0 {
		fmt.Fprintln(w, "no agents")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := "ID\tNAME\tSTATE\tAGENT\tBRANCH\tAGE\tDIFF\tCOST\tNOTES"
	if withRepo {
		head += "\tREPO"
	}
	fmt.Fprintln(tw, head)
	byID := make(map[string]*agents.Agent, len(as))
	for _, a := range as {
		byID[a.ID] = a
	}
	for _, a := range as {
		diff := "-"
		if a.Diff.Files > 0 || a.Diff.Commits > 0 {
			diff = fmt.Sprintf("%df +%d -%d", a.Diff.Files, a.Diff.Additions, a.Diff.Deletions)
		}
		cost := "-"
		if a.Usage.CostUSD > 0 {
			cost = fmt.Sprintf("$%.2f", a.Usage.CostUSD)
			if a.Usage.CostEstimated {
				cost = "~" + cost // estimated from [prices]
			}
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", a.ID, a.Name, a.State, a.Agent, a.Branch, age(a.CreatedAt), diff, cost, orDash(notes(a, byID)))
		if withRepo {
			line += "\t" + a.Repo
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func age(t time.Time) string {
	d := time.Since(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}

func showCmd() *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "show ID",
		Short: "Show one agent (ID: id, unique id prefix or name)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res server.GetResult
			if err := call(cmd.Context(), server.MethodGet, server.IDParams{ID: args[0], Repo: currentRepo(cmd.Context())}, &res); err != nil {
				return err
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), res.Agent)
			}
			a := res.Agent
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			row := func(k, v string) {
				if v != "" {
					fmt.Fprintf(w, "%s:\t%s\n", k, v)
				}
			}
			row("id", a.ID)
			row("name", a.Name)
			row("state", string(a.State))
			row("task", a.Task)
			row("agent", a.Agent)
			row("model", a.Model)
			row("repo", a.Repo)
			row("worktree", a.Worktree)
			row("branch", a.Branch)
			row("base", fmt.Sprintf("%s (%s)", a.Base, shortSHA(a.BaseCommit)))
			row("created", a.CreatedAt.Local().Format(time.RFC3339))
			if a.StartedAt != nil {
				row("started", a.StartedAt.Local().Format(time.RFC3339))
			}
			if a.FinishedAt != nil {
				row("finished", a.FinishedAt.Local().Format(time.RFC3339))
			}
			if a.ExitCode != nil {
				row("exit code", fmt.Sprint(*a.ExitCode))
			}
			row("error", a.Error)
			row("result", a.Result)
			row("diff", fmt.Sprintf("%d commits, %d files, +%d -%d", a.Diff.Commits, a.Diff.Files, a.Diff.Additions, a.Diff.Deletions))
			if a.Usage.InputTokens+a.Usage.OutputTokens > 0 {
				est := ""
				if a.Usage.CostEstimated {
					est = " (estimated from [prices])"
				}
				row("usage", fmt.Sprintf("%d in, %d out, cache %d read / %d written, $%.4f%s", a.Usage.InputTokens, a.Usage.OutputTokens, a.Usage.CacheReadTokens, a.Usage.CacheWriteTokens, a.Usage.CostUSD, est))
			}
			if a.Cleaned {
				row("cleanup", "changed nothing; worktree and branch removed")
			}
			row("session", a.SessionID)
			if a.Turns > 0 {
				row("turns", fmt.Sprint(a.Turns))
			}
			if a.Runs > 1 {
				row("runs", fmt.Sprint(a.Runs))
			}
			if a.StalledSince != nil {
				row("stalled", "no output since "+a.StalledSince.Local().Format(time.RFC3339))
			}
			for _, q := range a.Questions {
				row("question", q.Text)
			}
			if a.Group != "" {
				row("variant", fmt.Sprintf("%d of group %s", a.Variant, a.Group))
			}
			row("after", a.After)
			row("reviews", a.ReviewOf)
			row("integrates", strings.Join(a.Integrates, ", "))
			for _, r := range a.Reviews {
				var b strings.Builder
				printReview(&b, r)
				row("review", strings.TrimRight(strings.ReplaceAll(b.String(), "\n  ", "\n\t  "), "\n"))
			}
			for _, c := range a.Conflicts {
				with := "agent " + c.Name
				if c.Name == "" {
					with = "base " + c.Base
				}
				row("conflicts", fmt.Sprintf("with %s in %s", with, strings.Join(c.Files, ", ")))
			}
			if a.Pushed != nil {
				row("pushed", fmt.Sprintf("%s to %s at %s", shortSHA(a.Pushed.Commit), a.Pushed.Remote, a.Pushed.At.Local().Format(time.RFC3339)))
			}
			row("pull request", a.PullRequest)
			for _, t := range res.History {
				row("history", fmt.Sprintf("%s %s → %s: %s", t.At.Local().Format("15:04:05"), orDash(string(t.From)), t.To, t.Reason))
			}
			return w.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return c
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func shortSHA(s string) string {
	if len(s) > 10 {
		return s[:10]
	}
	return s
}

func logsCmd() *cobra.Command {
	var follow, asJSON bool
	c := &cobra.Command{
		Use:   "logs ID",
		Short: "Print what an agent did (-f: follow it live)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			out := cmd.OutOrStdout()
			print := func(ev agents.Event) {
				if asJSON {
					b, _ := json.Marshal(ev)
					fmt.Fprintln(out, string(b))
					return
				}
				fmt.Fprintln(out, renderEvent(ev))
			}
			from := int64(1)
			// page prints the log from `from` on (following when asked)
			// and returns the agent's state then.
			page := func() (server.LogResult, error) {
				var res server.LogResult
				for {
					if err := c.Call(ctx, server.MethodLog, server.LogParams{ID: args[0], Repo: currentRepo(ctx), From: from, Follow: follow}, &res); err != nil {
						return res, err
					}
					for _, ev := range res.Events {
						if ev.Seq >= from {
							print(ev)
							from = ev.Seq + 1
						}
					}
					if !res.More {
						return res, nil
					}
				}
			}
			res, err := page()
			if err != nil {
				return err
			}
			if !follow || !res.State.Active() {
				return nil
			}
			id := res.ID
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-c.Done():
					// The daemon went away: reconnect (a new daemon
					// re-adopts the agent) and carry on from where we are.
					nc, err := connect(ctx)
					if err != nil {
						return fmt.Errorf("lost the daemon while following %s: %w", id, err)
					}
					c.Close()
					*c = *nc
					if res, err = page(); err != nil {
						return err
					}
					if !res.State.Active() {
						return nil
					}
				case n := <-c.Notes():
					switch n.Method {
					case server.NotifyOutput:
						var p server.OutputParams
						if json.Unmarshal(n.Params, &p) != nil || p.ID != id || len(p.Events) == 0 {
							continue
						}
						if p.Events[0].Seq > from {
							// A gap (the daemon dropped notices for a slow
							// reader): fetch it from the log.
							if _, err := page(); err != nil {
								return err
							}
						}
						for _, ev := range p.Events {
							if ev.Seq >= from {
								print(ev)
								from = ev.Seq + 1
							}
						}
					case server.NotifyAgentChanged:
						var p server.AgentChangedParams
						if json.Unmarshal(n.Params, &p) == nil && p.Agent != nil && p.Agent.ID == id && !p.Agent.State.Active() {
							// Everything it printed was published before this.
							_, err := page()
							return err
						}
					}
				}
			}
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the agent ends")
	c.Flags().BoolVar(&asJSON, "json", false, "print events as JSON lines")
	return c
}

// renderEvent is one readable line for an event.
func renderEvent(ev agents.Event) string {
	ts := ev.Time.Local().Format("15:04:05")
	switch ev.Kind {
	case providers.KindOutput:
		if ev.Stream == "stderr" {
			return fmt.Sprintf("%s ! %s", ts, ev.Text)
		}
		return fmt.Sprintf("%s   %s", ts, ev.Text)
	case providers.KindState:
		return fmt.Sprintf("%s ── %s: %s", ts, ev.State, ev.Text)
	case providers.KindText:
		return fmt.Sprintf("%s » %s", ts, ev.Text)
	case providers.KindToolCall:
		what := ev.Path
		if ev.Command != "" {
			what = "$ " + ev.Command
		}
		return fmt.Sprintf("%s ⚙ %s %s %s", ts, ev.Tool, ev.ToolKind, what)
	case providers.KindToolResult:
		return fmt.Sprintf("%s ← %s %s %s", ts, ev.Tool, ev.Status, ev.Text)
	case providers.KindUsage:
		if ev.Usage != nil {
			return fmt.Sprintf("%s · tokens in %d out %d, $%.4f", ts, ev.Usage.InputTokens, ev.Usage.OutputTokens, ev.Usage.CostUSD)
		}
	case providers.KindQuestion:
		return fmt.Sprintf("%s ? %s", ts, ev.Text)
	case providers.KindResult:
		if ev.IsError {
			return fmt.Sprintf("%s ✘ %s %s", ts, ev.ErrorKind, ev.Text)
		}
		return fmt.Sprintf("%s ✔ %s", ts, ev.Text)
	case providers.KindStall:
		return fmt.Sprintf("%s … %s", ts, ev.Text)
	case providers.KindProgress:
		return fmt.Sprintf("%s … %s", ts, ev.Text)
	case providers.KindMessage:
		return fmt.Sprintf("%s ✉ you: %s", ts, ev.Text)
	case providers.KindSession:
		return fmt.Sprintf("%s ── session %s %s", ts, ev.SessionID, ev.Text)
	}
	if ev.Raw != "" {
		return fmt.Sprintf("%s   %s", ts, ev.Raw)
	}
	return fmt.Sprintf("%s   [%s] %s", ts, ev.Kind, ev.Text)
}

func diffCmd() *cobra.Command {
	var stat bool
	c := &cobra.Command{
		Use:   "diff ID",
		Short: "Show what an agent changed against its base",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res server.DiffResult
			if err := call(cmd.Context(), server.MethodDiff, server.DiffParams{ID: args[0], Repo: currentRepo(cmd.Context()), Stat: stat}, &res); err != nil {
				return err
			}
			if res.Diff == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "no changes")
				return nil
			}
			fmt.Fprint(cmd.OutOrStdout(), res.Diff)
			if !strings.HasSuffix(res.Diff, "\n") {
				fmt.Fprintln(cmd.OutOrStdout())
			}
			return nil
		},
	}
	c.Flags().BoolVar(&stat, "stat", false, "show a diffstat instead of the patch")
	return c
}

func openCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "open ID",
		Short: "Print the path of an agent's worktree (cd \"$(bgagents open ID)\")",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res server.OpenWorktreeResult
			if err := call(cmd.Context(), server.MethodOpenWorktree, server.IDParams{ID: args[0], Repo: currentRepo(cmd.Context())}, &res); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Path)
			return nil
		},
	}
}

func agentCmd(use, short, method string, params func(id, repo string) any) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res server.AgentResult
			if err := call(cmd.Context(), method, params(args[0], currentRepo(cmd.Context())), &res); err != nil {
				return err
			}
			a := res.Agent
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s: %s\n", a.ID, a.Name, a.State)
			if w := releaseWarning(a); w != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
			}
			return nil
		},
	}
}

// releaseWarning names what a merged or discarded agent still holds: a
// database copy that could not be dropped (the daemon tries again at start
// and on `rm`).
func releaseWarning(a *agents.Agent) string {
	if !a.State.Landed() || a.DatabaseURL == "" || strings.HasPrefix(a.DatabaseURL, "sqlite://") {
		return ""
	}
	return fmt.Sprintf("the database copy of %s could not be dropped yet (see bgagents show %s); bgagents rm %s tries again, and so does the next daemon start", a.Name, a.Name, a.Name)
}

func msgCmd() *cobra.Command {
	var allow, wait bool
	c := &cobra.Command{
		Use:   "msg ID TEXT...",
		Short: "Send a follow-up to an agent that stopped; it resumes the same conversation in the same worktree",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p := server.MessageParams{ID: args[0], Repo: currentRepo(ctx), Text: strings.Join(args[1:], " "), AllowDenied: allow}
			return startAgent(cmd, server.MethodMessage, p, wait, false)
		},
	}
	c.Flags().BoolVar(&allow, "allow", false, "allow, for this run, the tools the agent was refused")
	c.Flags().BoolVar(&wait, "wait", false, "wait until the agent stops again; exit non-zero unless it succeeded")
	c.Flags().SetInterspersed(false)
	return c
}

// startAgent makes a request that returns an agent about to run (a
// follow-up, an integration), waits for it to stop when wait is set, and
// prints "ID NAME: STATE" (with " on BRANCH" when withBranch). A wait that
// ends in anything but succeeded exits 1.
func startAgent(cmd *cobra.Command, method string, params any, wait, withBranch bool) error {
	ctx := cmd.Context()
	c, err := connect(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	var res server.AgentResult
	if err := c.Call(ctx, method, params, &res); err != nil {
		return err
	}
	a := res.Agent
	if wait {
		if a, err = waitAgent(ctx, c, a.ID); err != nil {
			return err
		}
	}
	line := fmt.Sprintf("%s %s: %s", a.ID, a.Name, a.State)
	if withBranch {
		line += " on " + a.Branch
	}
	fmt.Fprintln(cmd.OutOrStdout(), line)
	if wait && a.State != agents.StateSucceeded {
		fmt.Fprintf(cmd.ErrOrStderr(), "agent %s %s: %s\n", a.Name, a.State, a.Error)
		return &exitError{code: 1}
	}
	return nil
}

func cancelCmd() *cobra.Command {
	return agentCmd("cancel ID", "Stop an agent (SIGTERM, then SIGKILL after a grace period)", server.MethodCancel,
		func(id, repo string) any { return server.IDParams{ID: id, Repo: repo} })
}

func mergeCmd() *cobra.Command {
	var squash bool
	var into string
	c := agentCmd("merge ID", "Merge an agent's branch into its base, then remove its worktree and branch", server.MethodMerge,
		func(id, repo string) any {
			p := server.MergeParams{ID: id, Repo: repo, Into: into}
			if squash {
				p.Strategy = "squash"
			}
			return p
		})
	c.Flags().BoolVar(&squash, "squash", false, "land the work as one commit")
	c.Flags().StringVar(&into, "into", "", "branch to land in (default: the agent's base branch, or for a tag or commit base the branch checked out)")
	return c
}

func rmCmd() *cobra.Command {
	var force bool
	c := agentCmd("rm ID", "Discard an agent: remove its worktree and branch (refuses to lose work without --force)", server.MethodDiscard,
		func(id, repo string) any { return server.DiscardParams{ID: id, Repo: repo, Force: force} })
	c.Flags().BoolVar(&force, "force", false, "also discard uncommitted or unmerged work, cancelling a running agent")
	return c
}

func newLogger(p server.Paths, toStderr bool) (*zap.Logger, func(), error) {
	cfg := zap.NewProductionConfig()
	cfg.Encoding = "json"
	cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	cfg.Sampling = nil
	if lvl := os.Getenv("BGAGENTS_LOG_LEVEL"); lvl != "" {
		l, err := zapcore.ParseLevel(lvl)
		if err != nil {
			return nil, nil, fmt.Errorf("BGAGENTS_LOG_LEVEL: %w", err)
		}
		cfg.Level = zap.NewAtomicLevelAt(l)
	}
	if toStderr {
		cfg.OutputPaths = []string{"stderr"}
	} else {
		if err := os.MkdirAll(p.State, 0o700); err != nil {
			return nil, nil, fmt.Errorf("log directory: %w", err)
		}
		cfg.OutputPaths = []string{p.Log()}
	}
	cfg.ErrorOutputPaths = []string{"stderr"}
	l, err := cfg.Build()
	if err != nil {
		return nil, nil, fmt.Errorf("logger: %w", err)
	}
	return l, func() { _ = l.Sync() }, nil
}

func daemonCmd() *cobra.Command {
	var stop bool
	c := &cobra.Command{
		Use:   "daemon",
		Short: "Run the daemon in the foreground (clients start it on demand)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := server.DefaultPaths()
			if err != nil {
				return err
			}
			if stop {
				return stopDaemon(cmd.Context(), p, cmd.OutOrStdout())
			}
			log, sync, err := newLogger(p, false)
			if err != nil {
				return err
			}
			defer sync()
			var grace time.Duration
			if g := os.Getenv("BGAGENTS_GRACE"); g != "" {
				if grace, err = time.ParseDuration(g); err != nil {
					return fmt.Errorf("BGAGENTS_GRACE: %w", err)
				}
			}
			return server.RunDaemon(cmd.Context(), server.Options{Paths: p, Logger: log, Grace: grace})
		},
	}
	c.Flags().BoolVar(&stop, "stop", false, "stop the running daemon (agents keep running; the next command starts a new daemon)")
	return c
}

func stopDaemon(ctx context.Context, p server.Paths, out io.Writer) error {
	conn, err := server.Dial(ctx, p, nil)
	if err != nil {
		fmt.Fprintln(out, "no daemon is running")
		return nil
	}
	c := server.NewClient(ctx, conn)
	defer c.Close()
	var hello server.HelloResult
	if err := c.Call(ctx, server.MethodHello, server.HelloParams{Client: "bgagents-cli"}, &hello); err != nil {
		return err
	}
	if err := c.Call(ctx, server.MethodStopDaemon, nil, nil); err != nil && !errors.Is(err, server.ErrDisconnected) {
		return err
	}
	// Done when the process is gone (and so its lock released), not merely
	// when the socket closed: a command right after must be able to start
	// a new daemon.
	deadline := time.Now().Add(15 * time.Second)
	for syscall.Kill(hello.PID, 0) == nil && !zombie(hello.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("the daemon (pid %d) did not stop within 15s", hello.PID)
		}
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Fprintln(out, "daemon stopped")
	return nil
}

// zombie reports whether pid has exited but not been reaped.
func zombie(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(data), ')')
	return i >= 0 && i+2 < len(data) && (data[i+2] == 'Z' || data[i+2] == 'X')
}

func lspCmd() *cobra.Command {
	var stdio bool
	c := &cobra.Command{
		Use:   "lsp",
		Short: "Speak LSP on stdin/stdout to the daemon (what editors start)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			p, err := server.DefaultPaths()
			if err != nil {
				return err
			}
			// Start the daemon if needed and fail loudly (on stderr, which
			// editors show) when it is another build.
			c, err := connect(ctx)
			if err != nil {
				return err
			}
			c.Close()
			conn, err := server.Dial(ctx, p, nil)
			if err != nil {
				return err
			}
			return server.Forward(ctx, os.Stdin, os.Stdout, conn)
		},
	}
	// LSP clients add --stdio when they pick the stdio transport; stdio is
	// the only one there is.
	c.Flags().BoolVar(&stdio, "stdio", true, "speak LSP on stdin/stdout (the default and only transport)")
	return c
}

func versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, args []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "bgagents %s (build %s)\n", server.Version, server.Build())
		},
	}
}

func shimCmd() *cobra.Command {
	return &cobra.Command{
		Use:    "shim DIR",
		Short:  "Run one agent (internal: started by the daemon)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return agents.RunShim(context.Background(), args[0])
		},
	}
}

func doctorCmd() *cobra.Command {
	var repo string
	c := &cobra.Command{
		Use:   "doctor",
		Short: "Check git, the daemon, the config and which agent CLIs are installed",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			bad := 0
			check := func(ok bool, what, detail string) {
				mark := "ok  "
				if !ok {
					mark = "FAIL"
					bad++
				}
				fmt.Fprintf(out, "%s %s: %s\n", mark, what, detail)
			}
			v, err := worktree.Version(ctx)
			switch {
			case err != nil:
				check(false, "git", err.Error()+"; install git 2.38 or newer")
			default:
				check(gitAtLeast(v, 2, 38), "git", v+" (2.38 or newer needed for conflict checks)")
			}
			dir, _ := repoFlag(repo)
			root, rerr := worktree.RepoRoot(ctx, dir)
			if rerr != nil {
				check(true, "repository", "not in a git repository ("+dir+"); config of the user only")
				root = dir
			} else {
				check(true, "repository", root)
			}
			cfg, cerr := config.Load(root)
			if cerr != nil {
				check(false, "config", cerr.Error())
			} else {
				files := "no config files (defaults)"
				if len(cfg.Files) > 0 {
					files = strings.Join(cfg.Files, ", ")
				}
				check(true, "config", files)
			}
			c, derr := connect(ctx)
			if derr != nil {
				check(false, "daemon", derr.Error())
			} else {
				var h server.HelloResult
				if err := c.Call(ctx, server.MethodHello, server.HelloParams{Client: "doctor"}, &h); err != nil {
					check(false, "daemon", err.Error())
				} else {
					check(true, "daemon", fmt.Sprintf("pid %d, version %s, socket %s", h.PID, h.Version, h.Socket))
				}
				c.Close()
			}
			if cfg != nil {
				// Every known agent CLI, installed or not (not a failure:
				// only the configured agents must run).
				for _, name := range providers.Names() {
					if name == "command" {
						continue
					}
					p, _ := providers.Get(name)
					spec, err := cfg.Spec(name)
					if err != nil {
						spec = providers.Spec{Name: name, Provider: name}
					}
					argv, _, err := p.Command(spec, providers.Task{Prompt: "x", Worktree: root})
					if errors.Is(err, providers.ErrNotInstalled) {
						fmt.Fprintf(out, "--   %s: not installed (%s)\n", name, p.Install())
						continue
					}
					if err != nil {
						check(false, name, err.Error())
						continue
					}
					v, verr := providers.VersionOf(argv[0])
					if verr != nil {
						v = "version unknown: " + verr.Error()
					}
					fmt.Fprintf(out, "ok   %s: %s (%s)\n", name, argv[0], v)
				}
				for _, name := range cfg.AgentNames() {
					if name == "none" {
						continue
					}
					spec, err := cfg.Spec(name)
					if err != nil {
						check(false, "agent "+name, err.Error())
						continue
					}
					prov, err := providers.Get(spec.Provider)
					if err != nil {
						check(false, "agent "+name, err.Error())
						continue
					}
					argv, _, err := prov.Command(spec, providers.Task{Prompt: "x", Worktree: root})
					if err != nil {
						check(false, "agent "+name, err.Error())
					} else {
						check(true, "agent "+name, fmt.Sprintf("%s (%s)", argv[0], spec.Provider))
					}
				}
			}
			if bad > 0 {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	c.Flags().StringVar(&repo, "repo", "", "repository whose config to check (default: the current directory's)")
	return c
}

func gitAtLeast(v string, major, minor int) bool {
	var a, b int
	if _, err := fmt.Sscanf(v, "%d.%d", &a, &b); err != nil {
		return false
	}
	return a > major || a == major && b >= minor
}
