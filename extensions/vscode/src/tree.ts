// The "Agents" view: repositories (when several are open), their agents,
// and each agent's changed files. Refreshed from the store, which only the
// daemon's notifications change.

import * as path from "node:path";
import * as vscode from "vscode";

import type { Agent, FileChange } from "./lsp_ext";
import { contextValue, describe, isLive, stateIcon, stateLabel, tooltip } from "./model";
import type { AgentStore } from "./store";

export type Node =
    | { kind: "repo"; repo: string }
    | { kind: "agent"; id: string }
    | { kind: "file"; agentId: string; file: FileChange };

/** Loads an agent's changed files (bgagents/diff). */
export type FileLister = (agent: Agent) => Promise<FileChange[]>;

export class AgentsTree implements vscode.TreeDataProvider<Node>, vscode.Disposable {
    private readonly changed = new vscode.EventEmitter<Node | undefined>();
    readonly onDidChangeTreeData = this.changed.event;

    // Node objects are kept so that reveal() and refreshes hand VS Code the same elements.
    private readonly repoNodes = new Map<string, Node>();
    private readonly agentNodes = new Map<string, Node>();
    /** Changed files per agent, until its diff changes (a run ended, a merge). */
    private readonly files = new Map<string, { key: string; files: Promise<FileChange[]> }>();
    private readonly disposables: vscode.Disposable[] = [];

    constructor(
        private readonly store: AgentStore,
        private readonly listFiles: FileLister,
        private readonly now: () => Date = () => new Date(),
    ) {
        this.disposables.push(store.onDidChange(() => this.refresh()));
    }

    refresh(): void {
        this.changed.fire(undefined);
    }

    /** The node of an agent, for TreeView.reveal. */
    agentNode(id: string): Node {
        let n = this.agentNodes.get(id);
        if (n === undefined) this.agentNodes.set(id, (n = { kind: "agent", id }));
        return n;
    }

    private repoNode(repo: string): Node {
        let n = this.repoNodes.get(repo);
        if (n === undefined) this.repoNodes.set(repo, (n = { kind: "repo", repo }));
        return n;
    }

    getChildren(node?: Node): vscode.ProviderResult<Node[]> {
        const groups = this.store.tree();
        if (node === undefined) {
            if (groups.length === 1) return groups[0]!.agents.map((a) => this.agentNode(a.id));
            return groups.map((g) => this.repoNode(g.repo));
        }
        switch (node.kind) {
            case "repo":
                return (groups.find((g) => g.repo === node.repo)?.agents ?? []).map((a) => this.agentNode(a.id));
            case "agent": {
                const agent = this.store.get(node.id);
                if (agent === undefined) return [];
                return this.changedFiles(agent).then(
                    (files) => files.map((file) => ({ kind: "file", agentId: agent.id, file }) as const),
                    () => [],
                );
            }
            case "file":
                return [];
        }
    }

    private changedFiles(agent: Agent): Promise<FileChange[]> {
        // A running agent's files change without a new snapshot (the daemon's diff includes its uncommitted edits): ask each time.
        if (isLive(agent.state)) return this.listFiles(agent);
        const d = agent.diff;
        const key = [agent.state, agent.head ?? "", d.commits, d.files, d.additions, d.deletions].join("|");
        const cached = this.files.get(agent.id);
        if (cached !== undefined && cached.key === key) return cached.files;
        const files = this.listFiles(agent);
        this.files.set(agent.id, { key, files });
        files.catch(() => this.files.delete(agent.id));
        return files;
    }

    getParent(node: Node): vscode.ProviderResult<Node> {
        if (node.kind === "repo") return undefined;
        const groups = this.store.tree();
        if (node.kind === "file") return this.agentNode(node.agentId);
        if (groups.length <= 1) return undefined;
        const agent = this.store.get(node.id);
        return agent !== undefined ? this.repoNode(agent.repo) : undefined;
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
            case "agent": {
                const agent = this.store.get(node.id);
                if (agent === undefined) return new vscode.TreeItem("(gone)");
                return agentItem(agent, this.now());
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

function agentItem(agent: Agent, now: Date): vscode.TreeItem {
    // A running agent may have changed files that are not committed (and counted) yet.
    const hasFiles = agent.cleaned !== true && (agent.diff.files > 0 || agent.state === "running");
    const item = new vscode.TreeItem(
        agent.name,
        hasFiles ? vscode.TreeItemCollapsibleState.Collapsed : vscode.TreeItemCollapsibleState.None,
    );
    item.id = `agent:${agent.id}`;
    item.description = describe(agent, now);
    const icon = stateIcon(agent.state);
    item.iconPath = new vscode.ThemeIcon(icon.id, icon.color !== undefined ? new vscode.ThemeColor(icon.color) : undefined);
    const md = new vscode.MarkdownString(tooltip(agent, now));
    md.supportThemeIcons = false;
    item.tooltip = md;
    item.contextValue = contextValue(agent);
    item.accessibilityInformation = { label: `${agent.name}, ${stateLabel(agent.state)}, ${item.description}` };
    return item;
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
