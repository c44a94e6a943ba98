// The agents this window knows about, fed by one bgagents/list at each
// (re)connect and then only by bgagents/agentChanged notifications (no
// polling).

import * as vscode from "vscode";

import type { Agent } from "./lsp_ext";
import { applySnapshot, buildTree, count, EMPTY_SCOPE, inScope, reconcile, type AgentChange, type Counts, type RepoGroup, type Scope } from "./model";

export type { AgentChange } from "./model";

export class AgentStore implements vscode.Disposable {
    private readonly agents = new Map<string, Agent>();
    /** The window's repositories; empty until they are known, and for a window without any. */
    private scope: Scope = EMPTY_SCOPE;

    private readonly changed = new vscode.EventEmitter<AgentChange | undefined>();
    /** Fires with the agent that changed, or undefined when everything may have (a new list, a new scope). */
    readonly onDidChange = this.changed.event;

    /** The snapshots held now: pass them to reset() with the list asked for afterwards. */
    snapshot(): ReadonlyMap<string, Agent> {
        return new Map(this.agents);
    }

    /**
     * Applies a fresh list (at connect, after a reconnect, on refresh) and
     * returns the snapshots that changed, with the ones held before. Agents
     * of `before` (the snapshot taken when the list was asked for) that the
     * list lacks and no notification updated since are dropped.
     */
    reset(agents: readonly Agent[], before?: ReadonlyMap<string, Agent>): AgentChange[] {
        const changes = reconcile(this.agents, agents, before);
        this.changed.fire(undefined);
        return changes;
    }

    /** Applies one snapshot from bgagents/agentChanged or a request's result. */
    update(agent: Agent): AgentChange | undefined {
        const { applied, previous } = applySnapshot(this.agents, agent);
        if (!applied) return undefined;
        const change = { agent, previous };
        this.changed.fire(change);
        return change;
    }

    setScope(scope: Scope): void {
        this.scope = { roots: [...scope.roots], folders: [...scope.folders] };
        this.changed.fire(undefined);
    }

    getScope(): Scope {
        return this.scope;
    }

    /** The window's repositories (main checkouts). */
    getRoots(): readonly string[] {
        return this.scope.roots;
    }

    /** Whether the agent belongs to one of the window's repositories. */
    inScope(agent: Agent): boolean {
        return inScope(agent.repo, this.scope);
    }

    get(id: string): Agent | undefined {
        return this.agents.get(id);
    }

    /** Every agent the daemon told this window about, in scope or not. */
    all(): Agent[] {
        return [...this.agents.values()];
    }

    tree(): RepoGroup[] {
        return buildTree(this.agents.values(), this.scope);
    }

    counts(): Counts {
        return count(this.agents.values(), this.scope);
    }

    dispose(): void {
        this.changed.dispose();
    }
}
