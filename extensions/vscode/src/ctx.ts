// The composition root: the connection to the daemon, the agent store and
// everything that shows it (tree, status bar, notifications, logs, diffs),
// and their disposal.

import * as path from "node:path";
import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import { createClient } from "./client";
import { Config } from "./config";
import { Diffs, GitContentProvider } from "./diff";
import { GIT_SCHEME } from "./diffplan";
import { mainCheckout } from "./git";
import { AgentLogs } from "./log";
import * as ext from "./lsp_ext";
import { noticeFor, statusText, statusTooltip, type Notice, type NoticeAction } from "./model";
import { askSpawn } from "./prompts";
import { AgentStore } from "./store";
import { AgentsTree, type Node } from "./tree";

export const VIEW_ID = "bgagents.agents";

/** What a notification button runs, with the agent as argument. */
const ACTION_COMMANDS: Record<NoticeAction, string> = {
    "Open Worktree": "bgagents.openWorktree",
    "Show Diff": "bgagents.showDiff",
    Merge: "bgagents.merge",
    Reply: "bgagents.followUp",
    "Show Log": "bgagents.showLog",
};

export class Ctx implements vscode.Disposable {
    readonly config = new Config();
    readonly store = new AgentStore();
    /** The connection's log (the language client writes here too). */
    readonly output: vscode.LogOutputChannel;
    readonly tree: AgentsTree;
    readonly view: vscode.TreeView<Node>;
    readonly logs: AgentLogs;
    readonly diffs: Diffs;
    private readonly statusBar: vscode.StatusBarItem;
    private readonly disposables: vscode.Disposable[] = [];

    private languageClient: lc.LanguageClient | undefined;
    /** The binary the client was started with. */
    private serverPath = "";
    private connectedOnce = false;
    private clientDisposables: vscode.Disposable[] = [];
    /** Agents that end before this are not announced again. */
    private readonly since = new Date();
    private daemonVersion = "";
    private readonly started = new vscode.EventEmitter<void>();
    /** Fires after each successful connect and its first list. */
    readonly onDidStart = this.started.event;
    private readonly noticeShown = new vscode.EventEmitter<{ agent: ext.Agent; notice: Notice }>();
    /** Fires when a notification about an agent is shown (tests wait on it). */
    readonly onDidShowNotice = this.noticeShown.event;

    constructor(readonly extension: vscode.ExtensionContext) {
        this.output = vscode.window.createOutputChannel("Background Agents", { log: true });
        this.diffs = new Diffs(() => this.client());
        this.logs = new AgentLogs(
            () => this.client(),
            (what, e) => this.output.error(`${what}: ${errorMessage(e)}`),
        );
        this.tree = new AgentsTree(this.store, (agent) => this.diffs.files(agent));
        this.view = vscode.window.createTreeView(VIEW_ID, { treeDataProvider: this.tree, showCollapseAll: true });
        this.statusBar = vscode.window.createStatusBarItem("bgagents.status", vscode.StatusBarAlignment.Left, 5);
        this.statusBar.name = "Background Agents";
        this.statusBar.command = `workbench.view.extension.bgagents`;
        this.disposables.push(
            this.output,
            this.store,
            this.tree,
            this.view,
            this.logs,
            this.statusBar,
            this.started,
            this.noticeShown,
            vscode.workspace.registerTextDocumentContentProvider(GIT_SCHEME, new GitContentProvider(this.output)),
            this.store.onDidChange(() => this.updateStatus()),
            vscode.workspace.onDidChangeWorkspaceFolders(() => void this.updateRoots()),
            vscode.workspace.onDidChangeConfiguration((e) => {
                // Restart only when the binary really changed (the event also fires when settings are reloaded).
                if (Config.needsRestart(e) && this.config.serverPath !== this.serverPath) void this.restart();
            }),
            // Ages in the tree are re-rendered each minute while it is visible; the data itself only changes on notifications.
            everyMinute(() => {
                if (this.view.visible) this.tree.refresh();
            }),
        );
        this.updateStatus();
    }

    /** The running client, or undefined while not connected. */
    client(): lc.LanguageClient | undefined {
        return this.languageClient?.isRunning() === true ? this.languageClient : undefined;
    }

    requireClient(): lc.LanguageClient {
        const c = this.client();
        if (c === undefined) {
            throw new Error(
                `Not connected to the bgagents daemon. Check the setting bgagents.path (now "${this.config.serverPath}") and the output "Background Agents", then run "Background Agents: Restart Connection to the Daemon".`,
            );
        }
        return c;
    }

    async start(): Promise<void> {
        await setContext("bgagents.failed", false);
        await this.updateRoots();
        this.serverPath = this.config.serverPath;
        const { client, disposable } = createClient(this.serverPath, this.output, {
            completeSendToAgent: (args) => this.completeSendToAgent(args),
            spawned: (agent) => this.spawned(agent),
        });
        this.languageClient = client;
        this.clientDisposables = [
            disposable,
            client.onNotification(ext.agentChanged, (p) => {
                if (p.agent !== null) this.agentChanged(p.agent);
            }),
            client.onNotification(ext.output, (p) => this.logs.onOutput(p)),
            client.onDidChangeState((e) => {
                // After the daemon went away and `bgagents lsp` was restarted: catch up.
                if (e.oldState === lc.State.Starting && e.newState === lc.State.Running && this.connectedOnce) void this.resync();
                if (e.newState === lc.State.Stopped) this.updateStatus();
            }),
        ];
        try {
            await client.start();
        } catch (e) {
            this.output.error(`cannot start "${this.config.serverPath} lsp": ${errorMessage(e)}`);
            await setContext("bgagents.failed", true);
            this.updateStatus(errorMessage(e));
            void vscode.window
                .showErrorMessage(
                    `Background Agents: cannot start "${this.config.serverPath} lsp": ${errorMessage(e)}. Install bgagents or set its path.`,
                    "Open Settings",
                    "Show Output",
                )
                .then((choice) => {
                    if (choice === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "bgagents.path");
                    if (choice === "Show Output") this.output.show();
                });
            return;
        }
        try {
            const hello = await client.sendRequest(ext.hello, { client: "vscode", version: String(this.extension.extension.packageJSON["version"] ?? "") });
            this.daemonVersion = hello.version;
            this.output.info(`connected to bgagents daemon ${hello.version} (pid ${hello.pid}, ${hello.home})`);
        } catch (e) {
            this.output.warn(`bgagents/hello failed: ${errorMessage(e)}`);
        }
        this.connectedOnce = true;
        await this.resync();
    }

    async stop(): Promise<void> {
        const c = this.languageClient;
        this.languageClient = undefined;
        for (const d of this.clientDisposables) d.dispose();
        this.clientDisposables = [];
        this.connectedOnce = false;
        if (c !== undefined) {
            try {
                await c.stop(2000);
            } catch (e) {
                this.output.warn(`stopping the client: ${errorMessage(e)}`);
            }
        }
        await setContext("bgagents.started", false);
        this.updateStatus();
    }

    async restart(): Promise<void> {
        await this.stop();
        await this.start();
    }

    /** Lists every agent again and re-follows open logs. */
    async resync(): Promise<void> {
        const client = this.requireClient();
        const res = await client.sendRequest(ext.list, {});
        this.store.reset((res.agents ?? []).filter((a): a is ext.Agent => a !== null));
        this.logs.resubscribe();
        await setContext("bgagents.started", true);
        this.started.fire();
    }

    /** A snapshot from the daemon or from a request's result. */
    agentChanged(agent: ext.Agent): void {
        const change = this.store.update(agent);
        if (change === undefined || !this.store.inScope(agent)) return;
        const notice = noticeFor(change.previous, agent, this.since);
        if (notice !== undefined) this.showNotice(agent, notice);
    }

    /** After a spawn from this window: record it and select it in the sidebar. */
    spawned(agent: ext.Agent): void {
        this.store.update(agent);
        if (this.view.visible) {
            this.view.reveal(this.tree.agentNode(agent.id), { select: true, focus: false }).then(undefined, () => undefined);
        }
    }

    private showNotice(agent: ext.Agent, notice: Notice): void {
        const show =
            notice.severity === "error"
                ? vscode.window.showErrorMessage
                : notice.severity === "warning"
                  ? vscode.window.showWarningMessage
                  : vscode.window.showInformationMessage;
        this.noticeShown.fire({ agent, notice });
        void show(notice.message, ...notice.actions).then((choice) => {
            if (choice === undefined) return;
            // The record may have changed since; commands look the agent up again.
            void vscode.commands.executeCommand(ACTION_COMMANDS[choice], agent.id);
        });
    }

    private async completeSendToAgent(args: ext.SendToAgentArgs): Promise<ext.SendToAgentArgs | undefined> {
        const file = vscode.Uri.parse(args.uri).fsPath;
        const repo = this.rootOf(file) ?? path.dirname(file);
        const what = args.diagnostic !== undefined ? `fix “${args.diagnostic}”` : "improve the selected code";
        const choices = await askSpawn(this.config, repo, this.knownModels(), {
            title: "Send to background agent",
            defaultTask: `${what} in ${path.basename(file)}`,
        });
        if (choices === undefined) return undefined;
        const out: ext.SendToAgentArgs = { ...args };
        if (choices.task !== undefined) out.task = choices.task;
        if (choices.agent !== undefined) out.agent = choices.agent;
        if (choices.model !== undefined) out.model = choices.model;
        return out;
    }

    /** The open repository root containing file, if any. */
    rootOf(file: string): string | undefined {
        return this.store
            .getRoots()
            .filter((r) => file === r || file.startsWith(r + path.sep))
            .sort((a, b) => b.length - a.length)[0];
    }

    /** Models agents used before, offered in the model quick pick. */
    knownModels(): string[] {
        return this.store
            .all()
            .map((a) => a.model)
            .filter((m) => m !== "");
    }

    private async updateRoots(): Promise<void> {
        const folders = vscode.workspace.workspaceFolders ?? [];
        const roots: string[] = [];
        for (const f of folders) {
            if (f.uri.scheme !== "file") continue;
            const root = await mainCheckout(this.output, f.uri.fsPath);
            if (root !== undefined && !roots.includes(root)) roots.push(root);
        }
        this.store.setRoots(roots);
    }

    private updateStatus(error?: string): void {
        if (error !== undefined) {
            this.statusBar.text = "$(error) Agents";
            this.statusBar.tooltip = `Background Agents: not connected: ${error}`;
            this.statusBar.command = "bgagents.showServerOutput";
            this.statusBar.show();
            return;
        }
        const c = this.store.counts();
        this.statusBar.text = statusText(c);
        this.statusBar.tooltip = statusTooltip(c) + (this.daemonVersion !== "" ? ` (daemon ${this.daemonVersion})` : "");
        this.statusBar.command = "workbench.view.extension.bgagents";
        this.statusBar.accessibilityInformation = { label: statusTooltip(c) };
        this.statusBar.show();
    }

    /** The status bar's text (for tests). */
    statusBarText(): string {
        return this.statusBar.text;
    }

    dispose(): void {
        void this.stop();
        for (const d of this.disposables) d.dispose();
    }
}

export function errorMessage(e: unknown): string {
    if (e instanceof Error) return e.message;
    return String(e);
}

function setContext(key: string, value: unknown): Thenable<unknown> {
    return vscode.commands.executeCommand("setContext", key, value);
}

function everyMinute(f: () => void): vscode.Disposable {
    const t = setInterval(f, 60_000);
    return { dispose: () => clearInterval(t) };
}
