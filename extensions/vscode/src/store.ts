// The agents this window knows about, fed by one bgagents/list at connect
// and then only by bgagents/agentChanged notifications (no polling).

import * as vscode from "vscode";

import type { Agent } from "./lsp_ext";
import { applySnapshot, buildTree, count, type Counts, type RepoGroup } from "./model";

export interface AgentChange {
    agent: Agent;
    /** The snapshot held before, if any. */
    previous: Agent | undefined;
}

export class AgentStore implements vscode.Disposable {
    private readonly agents = new Map<string, Agent>();
    /** Main checkouts of the workspace folders; empty: show every repository. */
    private roots: string[] = [];

    private readonly changed = new vscode.EventEmitter<AgentChange | undefined>();
    /** Fires with the agent that changed, or undefined when everything may have (a new list, new roots). */
    readonly onDidChange = this.changed.event;

    /** Replaces everything with a fresh list (at connect and on refresh). */
    reset(agents: readonly Agent[]): void {
        const fresh = new Map<string, Agent>();
        for (const a of agents) {
            const held = this.agents.get(a.id);
            // A notification may already have brought a newer snapshot.
            fresh.set(a.id, held !== undefined && held.updatedAt > a.updatedAt ? held : a);
        }
        this.agents.clear();
        for (const [id, a] of fresh) this.agents.set(id, a);
        this.changed.fire(undefined);
    }

    /** Applies one snapshot from bgagents/agentChanged or a request's result. */
    update(agent: Agent): AgentChange | undefined {
        const { applied, previous } = applySnapshot(this.agents, agent);
        if (!applied) return undefined;
        const change = { agent, previous };
        this.changed.fire(change);
        return change;
    }

    setRoots(roots: readonly string[]): void {
        this.roots = [...roots];
        this.changed.fire(undefined);
    }

    getRoots(): readonly string[] {
        return this.roots;
    }

    /** Whether the agent belongs to an open repository. */
    inScope(agent: Agent): boolean {
        return this.roots.length === 0 || this.roots.includes(agent.repo);
    }

    get(id: string): Agent | undefined {
        return this.agents.get(id);
    }

    all(): Agent[] {
        return [...this.agents.values()];
    }

    tree(): RepoGroup[] {
        return buildTree(this.agents.values(), this.roots);
    }

    counts(): Counts {
        return count(this.agents.values(), this.roots);
    }

    dispose(): void {
        this.changed.dispose();
    }
}
