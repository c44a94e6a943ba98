// The "Agents" view: repositories (when several are open), fan-out groups,
// their agents, and under each agent its reviews (with their findings), the
// branches it conflicts with, and its changed files. Refreshed from the
// store, which only the daemon's notifications change.

import * as path from "node:path";
import * as vscode from "vscode";

import {
    conflictLabel,
    findingLabel,
    findingLocation,
    findingSeverity,
    groupDescription,
    groupLabel,
    isOutdated,
    reviewDescription,
    reviewerOf,
    reviewIcon,
    reviewLabel,
    type NameOf,
} from "./landing";
import type { Agent, FileChange, Finding, Review } from "./lsp_ext";
import { contextValue, describe, integrable, isLive, isShown, stateIcon, stateLabel, tooltip, treeChange, type RepoGroup } from "./model";
import type { AgentChange, AgentStore } from "./store";

/** How long a live agent's list of changed files is reused (each listing snapshots its worktree): Refresh lists again at once. */
export const LIVE_FILES_TTL_MS = 5000;

export type Node =
    | { kind: "repo"; repo: string }
    | { kind: "group"; repo: string; group: string }
    | { kind: "agent"; id: string }
    | { kind: "review"; agentId: string; reviewId: string }
    | { kind: "finding"; agentId: string; reviewId: string; index: number }
    | { kind: "conflict"; agentId: string; index: number }
    | { kind: "file"; agentId: string; file: FileChange };

/** Loads an agent's changed files (bgagents/diff). */
export type FileLister = (agent: Agent) => Promise<FileChange[]>;

/** URI scheme of agent rows, so that a FileDecorationProvider can mark agents with conflicts. */
export const AGENT_SCHEME = "bgagents-agent";

export function agentUri(id: string): vscode.Uri {
    return vscode.Uri.from({ scheme: AGENT_SCHEME, path: `/${id}` });
}

export class AgentsTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
    private readonly changed = new vscode.EventEmitter<Node | undefined>();
    readonly onDidChangeTreeData = this.changed.event;

    // Node objects are kept so that reveal() and refreshes hand VS Code the same elements.
    private readonly nodes = new Map<string, Node>();
    /** Changed files per agent, until its diff changes (a run ended, a merge). */
    private readonly files = new Map<string, { key: string; at: number; files: Promise<FileChange[]> }>();
    private readonly disposables: vscode.Disposable[] = [];
    private readonly nameOf: NameOf = (id) => this.store.get(id)?.name;

    constructor(
        private readonly store: AgentStore,
        private readonly listFiles: FileLister,
        private readonly now: () => Date = () => new Date(),
    ) {
        this.disposables.push(store.onDidChange((c) => this.onStoreChange(c)));
    }

    /** Redraws everything (a new list, a new scope, the ages each minute). */
    refresh(): void {
        this.prune();
        this.changed.fire(undefined);
    }

    /** Lists changed files again on the next expand or redraw (Refresh). */
    invalidateFiles(): void {
        this.files.clear();
    }

    /** A snapshot: redraw only what it changes (usage-only updates of a running agent change nothing shown). */
    private onStoreChange(c: AgentChange | undefined): void {
        if (c === undefined) {
            this.refresh();
            return;
        }
        if (!this.store.inScope(c.agent) && (c.previous === undefined || !this.store.inScope(c.previous))) return;
        const kind = treeChange(c.previous, c.agent, this.now(), this.nameOf);
        if (kind === "none") return;
        if (kind === "all" || !this.nodes.has(`agent:${c.agent.id}`)) this.refresh();
        else this.changed.fire(this.agentNode(c.agent.id));
    }

    /** Forgets the nodes (and file lists) of agents no longer shown. */
    private prune(): void {
        const shown = (id: string): boolean => {
            const a = this.store.get(id);
            return a !== undefined && isShown(a);
        };
        for (const key of [...this.nodes.keys()]) {
            const [kind, id = ""] = key.split(":", 2);
            if ((kind === "agent" || kind === "review" || kind === "finding" || kind === "conflict") && !shown(id)) this.nodes.delete(key);
        }
        for (const id of [...this.files.keys()]) if (!shown(id)) this.files.delete(id);
    }

    private node<N extends Node>(key: string, make: () => N): N {
        let n = this.nodes.get(key);
        if (n === undefined) this.nodes.set(key, (n = make()));
        return n as N;
    }

    /** The node of an agent, for TreeView.reveal. */
    agentNode(id: string): Node {
        return this.node(`agent:${id}`, () => ({ kind: "agent", id }));
    }

    /** The node of a review (reviewId: the reviewer's id) of an agent, for TreeView.reveal. */
    reviewNode(agentId: string, reviewId: string): Node {
        return this.node(`review:${agentId}:${reviewId}`, () => ({ kind: "review", agentId, reviewId }));
    }

    /** The node of a fan-out group, for TreeView.reveal. */
    groupNode(repo: string, group: string): Node {
        return this.node(`group:${repo}:${group}`, () => ({ kind: "group", repo, group }));
    }

    private repoNode(repo: string): Node {
        return this.node(`repo:${repo}`, () => ({ kind: "repo", repo }));
    }

    private findingNode(agentId: string, reviewId: string, index: number): Node {
        return this.node(`finding:${agentId}:${reviewId}:${index}`, () => ({ kind: "finding", agentId, reviewId, index }));
    }

    /** The node of an agent's conflict, for TreeView.reveal and the conflict notification's buttons. */
    conflictNodeOf(agentId: string, index: number): Node {
        return this.conflictNode(agentId, index);
    }

    private conflictNode(agentId: string, index: number): Node {
        return this.node(`conflict:${agentId}:${index}`, () => ({ kind: "conflict", agentId, index }));
    }

    private entries(g: RepoGroup): Node[] {
        return g.entries.map((e) => (e.kind === "agent" ? this.agentNode(e.agent.id) : this.groupNode(g.repo, e.group)));
    }

    /** The agents of a fan-out group as the tree shows them, by variant; undefined when it has no node. */
    groupAgents(repo: string, group: string): Agent[] | undefined {
        const g = this.store.tree().find((x) => x.repo === repo);
        const e = g?.entries.find((x) => x.kind === "group" && x.group === group);
        return e?.kind === "group" ? e.agents : undefined;
    }

    getChildren(node?: Node): vscode.ProviderResult<Node[]> {
        const groups = this.store.tree();
        if (node === undefined) {
            if (groups.length === 1) return this.entries(groups[0]!);
            return groups.map((g) => this.repoNode(g.repo));
        }
        switch (node.kind) {
            case "repo": {
                const g = groups.find((x) => x.repo === node.repo);
                return g !== undefined ? this.entries(g) : [];
            }
            case "group":
                return (this.groupAgents(node.repo, node.group) ?? []).map((a) => this.agentNode(a.id));
            case "agent": {
                const agent = this.store.get(node.id);
                if (agent === undefined) return [];
                // The newest review first; then the conflicts; then the changed files.
                const reviews = [...(agent.reviews ?? [])].reverse().map((r) => this.reviewNode(agent.id, r.id));
                const conflicts = (agent.conflicts ?? []).map((_, i) => this.conflictNode(agent.id, i));
                const fixed = [...reviews, ...conflicts];
                if (!hasFiles(agent)) return fixed;
                return this.changedFiles(agent).then(
                    (files) => [...fixed, ...files.map((file) => ({ kind: "file", agentId: agent.id, file }) as const)],
                    () => fixed,
                );
            }
            case "review": {
                const review = this.review(node);
                return (review?.findings ?? []).map((_, i) => this.findingNode(node.agentId, node.reviewId, i));
            }
            case "finding":
            case "conflict":
            case "file":
                return [];
        }
    }

    private changedFiles(agent: Agent): Promise<FileChange[]> {
        const d = agent.diff;
        const key = [agent.state, agent.head ?? "", d.commits, d.files, d.additions, d.deletions].join("|");
        const cached = this.files.get(agent.id);
        const now = Date.now();
        // A running agent's files change without a new snapshot (the daemon's diff includes its uncommitted edits): listed again after a while.
        if (cached !== undefined && cached.key === key && (!isLive(agent.state) || now - cached.at < LIVE_FILES_TTL_MS)) return cached.files;
        const files = this.listFiles(agent);
        this.files.set(agent.id, { key, at: now, files });
        files.catch(() => this.files.delete(agent.id));
        return files;
    }

    getParent(node: Node): vscode.ProviderResult<Node> {
        const groups = this.store.tree();
        switch (node.kind) {
            case "repo":
                return undefined;
            case "file":
            case "review":
            case "conflict":
                return this.agentNode(node.agentId);
            case "finding":
                return this.reviewNode(node.agentId, node.reviewId);
            case "group":
                return groups.length > 1 ? this.repoNode(node.repo) : undefined;
            case "agent": {
                const agent = this.store.get(node.id);
                if (agent === undefined) return undefined;
                const g = groups.find((x) => x.repo === agent.repo);
                const entry = g?.entries.find((e) => e.kind === "group" && e.agents.some((a) => a.id === agent.id));
                if (entry?.kind === "group") return this.groupNode(agent.repo, entry.group);
                return groups.length > 1 ? this.repoNode(agent.repo) : undefined;
            }
        }
    }

    /** The review a review or finding node stands for. */
    review(node: { agentId: string; reviewId: string }): Review | undefined {
        return this.store.get(node.agentId)?.reviews?.find((r) => r.id === node.reviewId);
    }

    /** The finding a finding node stands for. */
    finding(node: { agentId: string; reviewId: string; index: number }): Finding | undefined {
        return this.review(node)?.findings?.[node.index];
    }

    getTreeItem(node: Node): vscode.TreeItem {
        switch (node.kind) {
            case "repo": {
                const item = new vscode.TreeItem(path.basename(node.repo), vscode.TreeItemCollapsibleState.Expanded);
                item.id = `repo:${node.repo}`;
                item.description = path.dirname(node.repo);
                item.iconPath = new vscode.ThemeIcon("repo");
                item.tooltip = node.repo;
                item.contextValue = "bgagentsRepo";
                return item;
            }
            case "group": {
                const agents = this.groupAgents(node.repo, node.group) ?? [];
                return groupItem(node, agents);
            }
            case "agent": {
                const agent = this.store.get(node.id);
                if (agent === undefined) return new vscode.TreeItem("(gone)");
                return agentItem(agent, this.now(), this.nameOf);
            }
            case "review": {
                const agent = this.store.get(node.agentId);
                const review = this.review(node);
                if (agent === undefined || review === undefined) return new vscode.TreeItem("(gone)");
                return reviewItem(agent, review, this.store.get(review.id));
            }
            case "finding": {
                const f = this.finding(node);
                if (f === undefined) return new vscode.TreeItem("(gone)");
                return findingItem(node, f);
            }
            case "conflict": {
                const c = this.store.get(node.agentId)?.conflicts?.[node.index];
                if (c === undefined) return new vscode.TreeItem("(gone)");
                const item = new vscode.TreeItem(conflictLabel(c, this.nameOf), vscode.TreeItemCollapsibleState.None);
                item.id = `conflict:${node.agentId}:${c.agent ?? `base:${c.base ?? ""}`}`;
                item.iconPath = new vscode.ThemeIcon("warning", new vscode.ThemeColor("list.warningForeground"));
                const other = c.agent !== undefined && c.agent !== "" ? this.store.get(c.agent) : undefined;
                item.tooltip =
                    other !== undefined
                        ? `Merging both ${other.branch} and this agent's branch would conflict in: ${(c.files ?? []).join(", ")}. Integrate them, or merge one and send the other a follow-up.`
                        : `${c.base ?? "The base branch"} moved on since the agent started: merging it would conflict in ${(c.files ?? []).join(", ")}. The merge will be refused until that is resolved.`;
                const me = this.store.get(node.agentId);
                const canIntegrate = other !== undefined && me !== undefined && integrable([me, other]) !== undefined;
                item.contextValue = canIntegrate ? "bgagentsConflict integrate" : "bgagentsConflict";
                item.accessibilityInformation = { label: `${me?.name ?? ""} ${conflictLabel(c, this.nameOf).replace(/^Conflicts/, "conflicts")}` };
                return item;
            }
            case "file": {
                const f = node.file;
                const item = new vscode.TreeItem(path.basename(f.path), vscode.TreeItemCollapsibleState.None);
                item.id = `file:${node.agentId}:${f.path}`;
                const dir = path.dirname(f.path);
                item.description = `${dir === "." ? "" : `${dir} · `}${f.status} +${f.additions} −${f.deletions}`;
                item.resourceUri = vscode.Uri.file(`/${f.path}`);
                item.iconPath = vscode.ThemeIcon.File;
                item.tooltip = `${f.oldPath !== undefined ? `${f.oldPath} → ` : ""}${f.path} (${statusWord(f.status)})`;
                item.contextValue = "bgagentsFile";
                item.command = { command: "bgagents.openFileDiff", title: "Open Changes", arguments: [node] };
                return item;
            }
        }
    }

    dispose(): void {
        for (const d of this.disposables) d.dispose();
        this.changed.dispose();
    }
}

/**
 * Marks agents with conflicts in the tree: a "!" badge and the warning
 * color on their name (agent rows have an AGENT_SCHEME resourceUri).
 */
export class ConflictDecorations implements vscode.FileDecorationProvider, vscode.Disposable {
    private readonly changed = new vscode.EventEmitter<vscode.Uri | vscode.Uri[] | undefined>();
    readonly onDidChangeFileDecorations = this.changed.event;
    private readonly sub: vscode.Disposable;

    constructor(private readonly store: AgentStore) {
        this.sub = store.onDidChange((c) => this.changed.fire(c !== undefined ? agentUri(c.agent.id) : this.store.all().map((a) => agentUri(a.id))));
    }

    provideFileDecoration(uri: vscode.Uri): vscode.FileDecoration | undefined {
        if (uri.scheme !== AGENT_SCHEME) return undefined;
        const agent = this.store.get(uri.path.slice(1));
        const n = agent?.conflicts?.length ?? 0;
        if (n === 0) return undefined;
        return new vscode.FileDecoration("!", `Conflicts with ${n === 1 ? "another branch" : `${n} branches`}`, new vscode.ThemeColor("list.warningForeground"));
    }

    dispose(): void {
        this.sub.dispose();
        this.changed.dispose();
    }
}

/** An agent has changed files to list (a running agent may have changed files that are not committed, and counted, yet). */
function hasFiles(agent: Agent): boolean {
    return agent.cleaned !== true && (agent.diff.files > 0 || agent.state === "running");
}

function agentItem(agent: Agent, now: Date, nameOf: NameOf): vscode.TreeItem {
    const children = hasFiles(agent) || (agent.reviews ?? []).length > 0 || (agent.conflicts ?? []).length > 0;
    const item = new vscode.TreeItem(agent.name, children ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None);
    item.id = `agent:${agent.id}`;
    item.resourceUri = agentUri(agent.id);
    item.description = describe(agent, now, nameOf);
    const icon = stateIcon(agent.state);
    item.iconPath = new vscode.ThemeIcon(icon.id, icon.color !== undefined ? new vscode.ThemeColor(icon.color) : undefined);
    const md = new vscode.MarkdownString(tooltip(agent, now, nameOf));
    md.supportThemeIcons = false;
    item.tooltip = md;
    item.contextValue = contextValue(agent);
    item.accessibilityInformation = { label: `${agent.name}, ${stateLabel(agent.state)}, ${item.description}` };
    return item;
}

function groupItem(node: { repo: string; group: string }, agents: readonly Agent[]): vscode.TreeItem {
    const label = agents.length > 0 ? groupLabel(agents) : "(gone)";
    const item = new vscode.TreeItem(label, vscode.TreeItemCollapsibleState.Expanded);
    item.id = `group:${node.repo}:${node.group}`;
    item.description = groupDescription(agents);
    item.iconPath = new vscode.ThemeIcon("layers");
    const md = new vscode.MarkdownString();
    md.appendText(`Fan-out: ${agents.length} agents on the same task\n\n`);
    for (const a of agents) md.appendText(`v${a.variant ?? "?"} ${a.name} (${a.agent}${a.model !== "" ? `, ${a.model}` : ""}) — ${stateLabel(a.state)}\n\n`);
    item.tooltip = md;
    item.contextValue = integrable(agents) !== undefined ? "bgagentsGroup integrate" : "bgagentsGroup";
    item.accessibilityInformation = { label: `${label}, ${item.description}` };
    return item;
}

function reviewItem(agent: Agent, review: Review, reviewer: Agent | undefined): vscode.TreeItem {
    const n = review.findings?.length ?? 0;
    const latest = agent.reviews?.[agent.reviews.length - 1]?.id === review.id;
    const item = new vscode.TreeItem(
        reviewLabel(review),
        n === 0 ? vscode.TreeItemCollapsibleState.None : latest ? vscode.TreeItemCollapsibleState.Expanded : vscode.TreeItemCollapsibleState.Collapsed,
    );
    item.id = `review:${agent.id}:${review.id}`;
    item.description = reviewDescription(review, agent);
    const icon = reviewIcon(review);
    item.iconPath = new vscode.ThemeIcon(icon.id, icon.color !== undefined ? new vscode.ThemeColor(icon.color) : undefined);
    const md = new vscode.MarkdownString();
    md.appendMarkdown(`**${escapeMd(reviewLabel(review))}**\n\n`);
    md.appendText(`Reviewer ${review.name} (${reviewerOf(review)}, read-only, in a fresh context), of commit ${review.head.slice(0, 7)}${isOutdated(review, agent) ? " — the branch has moved on since" : ""}.\n\n`);
    if (review.summary !== undefined && review.summary !== "") md.appendText(`${review.summary}\n\n`);
    if (review.error !== undefined && review.error !== "") md.appendText(`No verdict: ${review.error}\n\n`);
    item.tooltip = md;
    const words = ["bgagentsReview"];
    if (reviewer !== undefined) words.push("reviewer");
    if (reviewer !== undefined && (isLive(reviewer.state) || reviewer.state === "needs_input")) words.push("cancel");
    if (n > 0) words.push("findings");
    item.contextValue = words.join(" ");
    item.accessibilityInformation = { label: `${reviewLabel(review)}, ${item.description}` };
    return item;
}

function findingItem(node: { agentId: string; reviewId: string; index: number }, f: Finding): vscode.TreeItem {
    const item = new vscode.TreeItem(findingLabel(f), vscode.TreeItemCollapsibleState.None);
    item.id = `finding:${node.agentId}:${node.reviewId}:${node.index}`;
    const where = findingLocation(f);
    item.description = where;
    const sev = findingSeverity(f);
    item.iconPath =
        sev === "error"
            ? new vscode.ThemeIcon("error", new vscode.ThemeColor("problemsErrorIcon.foreground"))
            : sev === "warning"
              ? new vscode.ThemeIcon("warning", new vscode.ThemeColor("problemsWarningIcon.foreground"))
              : new vscode.ThemeIcon("info", new vscode.ThemeColor("problemsInfoIcon.foreground"));
    item.tooltip = `${f.severity !== undefined && f.severity !== "" ? `[${f.severity}] ` : ""}${where !== "" ? `${where}: ` : ""}${f.message}`;
    item.contextValue = "bgagentsFinding";
    if (where !== "") item.command = { command: "bgagents.openFinding", title: "Open Finding", arguments: [node] };
    item.accessibilityInformation = { label: `${findingLabel(f)}, ${where}` };
    return item;
}

function escapeMd(s: string): string {
    return s.replace(/([\\`*_{}[\]<>()#+\-.!|])/g, "\\$1");
}

function statusWord(status: string): string {
    switch (status) {
        case "A":
            return "added";
        case "D":
            return "deleted";
        case "R":
            return "renamed";
        default:
            return "modified";
    }
}
