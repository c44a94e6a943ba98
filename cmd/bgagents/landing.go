package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/server"
)

// The commands that land an agent's work: review, push, pr, integrate.

func reviewCmd() *cobra.Command {
	var agent, model string
	var wait, asJSON bool
	c := &cobra.Command{
		Use:   "review ID",
		Short: "Start a read-only reviewer agent on an agent's diff, in a fresh context; its verdict is attached to the agent",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, err := connect(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			var res server.AgentResult
			p := server.ReviewParams{ID: args[0], Repo: currentRepo(ctx), Agent: agent, Model: model}
			if err := c.Call(ctx, server.MethodReview, p, &res); err != nil {
				return err
			}
			rev := res.Agent
			if !wait {
				if asJSON {
					return printJSON(cmd.OutOrStdout(), rev)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s: reviewing %s with %s\n", rev.ID, rev.Name, args[0], rev.Agent)
				return nil
			}
			if !asJSON {
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s reviewing with %s, waiting…\n", rev.ID, rev.Name, rev.Agent)
			}
			if _, err := waitAgent(ctx, c, rev.ID); err != nil {
				return err
			}
			// The verdict lands on the reviewed agent's record right after
			// the reviewer ended: wait for that change.
			var r *agents.Review
			for {
				var got server.GetResult
				if err := c.Call(ctx, server.MethodGet, server.IDParams{ID: rev.ReviewOf}, &got); err != nil {
					return err
				}
				if r = findReview(got.Agent, rev.ID); r != nil && r.FinishedAt != nil {
					break
				}
				if err := nextChange(ctx, c, rev.ReviewOf); err != nil {
					return err
				}
			}
			if asJSON {
				return printJSON(cmd.OutOrStdout(), r)
			}
			printReview(cmd.OutOrStdout(), *r)
			if r.Verdict == "" {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	c.Flags().StringVar(&agent, "agent", "", "reviewer agent (default: [review] agent, else the writer's agent; another vendor makes an adversarial review)")
	c.Flags().StringVar(&model, "model", "", "reviewer model")
	c.Flags().BoolVar(&wait, "wait", false, "wait for the verdict and print it; exit non-zero when there is none")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func findReview(a *agents.Agent, id string) *agents.Review {
	for i := range a.Reviews {
		if a.Reviews[i].ID == id {
			return &a.Reviews[i]
		}
	}
	return nil
}

// nextChange waits for the next bgagents/agentChanged of agent id, up to
// a few seconds (then the caller looks again).
func nextChange(ctx context.Context, c *server.Client, id string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil
			}
			return ctx.Err()
		case n := <-c.Notes():
			if n.Method != server.NotifyAgentChanged {
				continue
			}
			var p server.AgentChangedParams
			if json.Unmarshal(n.Params, &p) == nil && p.Agent != nil && p.Agent.ID == id {
				return nil
			}
		}
	}
}

func printReview(w io.Writer, r agents.Review) {
	switch {
	case r.Verdict != "":
		fmt.Fprintf(w, "%s (%s, %s): %s\n", strings.ReplaceAll(r.Verdict, "_", " "), r.Name, r.Agent, r.Summary)
	case r.Error != "":
		fmt.Fprintf(w, "no verdict (%s, %s): %s\n", r.Name, r.Agent, r.Error)
	default:
		fmt.Fprintf(w, "%s (%s, %s): %s\n", "reviewing", r.Name, r.Agent, r.State)
	}
	for _, f := range r.Findings {
		loc := f.File
		if f.Line > 0 {
			loc = fmt.Sprintf("%s:%d", f.File, f.Line)
		}
		if loc != "" {
			loc += ": "
		}
		sev := ""
		if f.Severity != "" {
			sev = "[" + f.Severity + "] "
		}
		fmt.Fprintf(w, "  %s%s%s\n", loc, sev, f.Message)
	}
}

func pushCmd() *cobra.Command {
	var remote string
	c := &cobra.Command{
		Use:   "push ID",
		Short: "Push an agent's branch to the remote ([push] remote, default origin)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res server.AgentResult
			if err := call(cmd.Context(), server.MethodPush, server.PushParams{ID: args[0], Repo: currentRepo(cmd.Context()), Remote: remote}, &res); err != nil {
				return err
			}
			p := res.Agent.Pushed
			fmt.Fprintf(cmd.OutOrStdout(), "pushed %s (%s) to %s\n", p.Branch, shortSHA(p.Commit), p.Remote)
			return nil
		},
	}
	c.Flags().StringVar(&remote, "remote", "", "remote to push to (default: [push] remote, else origin)")
	return c
}

func prCmd() *cobra.Command {
	var p server.PushParams
	c := &cobra.Command{
		Use:   "pr ID",
		Short: "Push an agent's branch and open a pull request with the GitHub CLI (gh); prints its URL",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.ID, p.Repo = args[0], currentRepo(cmd.Context())
			var res server.AgentResult
			if err := call(cmd.Context(), server.MethodPullRequest, p, &res); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), res.Agent.PullRequest)
			return nil
		},
	}
	c.Flags().StringVar(&p.Remote, "remote", "", "remote to push to (default: [push] remote, else origin)")
	c.Flags().StringVar(&p.Base, "base", "", "base branch of the pull request (default: the agent's base)")
	c.Flags().StringVar(&p.Title, "title", "", "title (default: the task's first line)")
	c.Flags().BoolVar(&p.Draft, "draft", false, "open it as a draft")
	return c
}

func integrateCmd() *cobra.Command {
	var p server.IntegrateParams
	var wait bool
	c := &cobra.Command{
		Use:   "integrate ID ID...",
		Short: "Start an agent on a branch that merges the given agents' branches, asked to resolve their conflicts",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p.IDs, p.Repo = args, currentRepo(cmd.Context())
			return startAgent(cmd, server.MethodIntegrate, p, wait, true)
		},
	}
	f := c.Flags()
	f.StringVar(&p.Task, "task", "", "what the integration agent should do (default: resolve the conflicts, keeping every change's intent)")
	f.StringVar(&p.Agent, "agent", "", "agent to run (default: [defaults].agent)")
	f.StringVar(&p.Model, "model", "", "model for the agent")
	f.StringVar(&p.Name, "name", "", "agent name (default: integrate-FIRST)")
	f.StringVar(&p.Base, "base", "", "branch to start from (default: the first agent's base)")
	f.BoolVar(&wait, "wait", false, "wait until the agent ends; exit non-zero unless it succeeded")
	return c
}

// notes summarises what the list shows beside an agent's state: its
// group, pipeline step, review and conflicts.
func notes(a *agents.Agent, byID map[string]*agents.Agent) string {
	name := func(id string) string {
		if o := byID[id]; o != nil {
			return o.Name
		}
		return id
	}
	var parts []string
	if a.Group != "" {
		parts = append(parts, fmt.Sprintf("variant %d of %s", a.Variant, a.Group))
	}
	if a.After != "" && a.State == agents.StateQueued {
		note := "after " + name(a.After)
		if dep := byID[a.After]; dep != nil {
			switch dep.State {
			case agents.StateNeedsInput:
				note += fmt.Sprintf(" (which needs input: bgagents msg %s)", dep.Name)
			case agents.StateSucceeded:
			default:
				note += " (" + string(dep.State) + ")"
			}
		}
		parts = append(parts, note)
	}
	if a.ReviewOf != "" {
		parts = append(parts, "reviews "+name(a.ReviewOf))
	}
	if n := len(a.Reviews); n > 0 {
		r := a.Reviews[n-1]
		switch {
		case r.Verdict != "":
			parts = append(parts, fmt.Sprintf("review: %s (%d findings)", strings.ReplaceAll(r.Verdict, "_", " "), len(r.Findings)))
		case r.Error != "":
			parts = append(parts, "review: no verdict")
		default:
			parts = append(parts, "review: "+string(r.State))
		}
	}
	for _, c := range a.Conflicts {
		with := c.Name
		if with == "" {
			with = c.Base
		}
		parts = append(parts, fmt.Sprintf("conflicts with %s (%s)", with, strings.Join(c.Files, ", ")))
	}
	if releaseWarning(a) != "" {
		parts = append(parts, "database copy not dropped yet")
	}
	if a.PullRequest != "" {
		parts = append(parts, a.PullRequest)
	} else if a.Pushed != nil {
		parts = append(parts, "pushed to "+a.Pushed.Remote)
	}
	return strings.Join(parts, "; ")
}
