// The composition root: the connection to the daemon, the agent store and
// everything that shows it (tree, status bar, notifications, logs, diffs,
// review findings as problems), and their disposal.

import * as path from "node:path";
import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import { createClient, PreparationProgress, StderrTail } from "./client";
import { Config } from "./config";
import { Diffs, GitContentProvider } from "./diff";
import { GIT_SCHEME } from "./diffplan";
import { ReviewFindings } from "./findings";
import { findRepositories, mainCheckout } from "./git";
import { conflictNotices, followUpForReview, reviewNotices, type ConflictNotice, type ReviewNotice } from "./landing";
import { AgentLogs } from "./log";
import * as ext from "./lsp_ext";
import { announcedIn, isInside, noticeFor, statusText, statusTooltip, type AgentChange, type Notice, type NoticeAction } from "./model";
import { askReviewer, askSpawn, type ReviewChoices, type SpawnChoices } from "./prompts";
import { AgentStore } from "./store";
import { AgentsTree, ConflictDecorations, type Node } from "./tree";

export const VIEW_ID = "bgagents.agents";

/** What a notification button runs, with the agent as argument. */
const ACTION_COMMANDS: Record<NoticeAction, string> = {
    "Open Worktree": "bgagents.openWorktree",
    "Show Diff": "bgagents.showDiff",
    Merge: "bgagents.merge",
    Reply: "bgagents.followUp",
    "Show Log": "bgagents.showLog",
    Discard: "bgagents.discard",
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
    /** Review findings shown as problems (Show Findings). */
    readonly findings = new ReviewFindings();
    private readonly statusBar: vscode.StatusBarItem;
    private statusBarVisible = false;
    private readonly disposables: vscode.Disposable[] = [];

    private languageClient: lc.LanguageClient | undefined;
    /** The daemon's progress of agents this window spawned (client.ts). */
    readonly progress: PreparationProgress;
    /** The last lines `bgagents lsp` wrote to stderr. */
    private readonly stderr = new StderrTail();
    /** How the connection is: shown in the status bar and the view. */
    private connection: { state: ConnectionState; message: string } = { state: "idle", message: "" };
    private readonly connectionChanged = new vscode.EventEmitter<{ state: ConnectionState; message: string }>();
    /** Fires when the connection's state changes; `failed` and `disconnected` come with the error shown (tests wait on it). */
    readonly onDidChangeConnection = this.connectionChanged.event;
    /** Pairs of agents (sorted ids, or an id and a base) whose conflict was announced. */
    private readonly conflictsAnnounced = new Set<string>();
    /** Workspace folders that are linked worktrees of agents: a window on one announces only that agent. */
    private worktreeFolders: string[] = [];
    /** Workspace folders in linked worktrees, with their repository's main checkout. */
    private linkedFolders: { folder: string; repo: string }[] = [];
    /** The binary the client was started with. */
    private serverPath = "";
    /** The start under way or done; undefined until something needs the daemon (and after stop). */
    private starting: Promise<void> | undefined;
    /** The hello and list after the client's latest (re)start. */
    private connecting: Promise<void> | undefined;
    private clientDisposables: vscode.Disposable[] = [];
    /** Agents that end before this are not announced again. */
    private readonly since = new Date();
    /** The daemon's bgagents/hello answer of the latest connect. */
    private daemonHello: ext.HelloResult | undefined;
    private readonly started = new vscode.EventEmitter<void>();
    /** Fires after each successful (re)connect, once the agents were listed again. */
    readonly onDidStart = this.started.event;
    private readonly noticeShown = new vscode.EventEmitter<{ agent: ext.Agent; notice: Notice | ReviewNotice | ConflictNotice | LinkNotice }>();
    private readonly asked = new vscode.EventEmitter<{ title: string; value: string }>();
    /** Fires when an input box is shown, with its title and value (tests wait on it). */
    readonly onDidAsk = this.asked.event;
    /** Fires when a notification about an agent is shown (tests wait on it). */
    readonly onDidShowNotice = this.noticeShown.event;
    private readonly commandFailed = new vscode.EventEmitter<{ command: string; message: string; code?: number }>();
    /** Fires when a command failed and its error was shown (tests wait on it). */
    readonly onDidFailCommand = this.commandFailed.event;
    /** Resolves when activation's work is done: the window's repositories are known and, if it has any, the daemon is connected. */
    readonly ready: Promise<void>;

    constructor(readonly extension: vscode.ExtensionContext) {
        this.output = vscode.window.createOutputChannel("Background Agents", { log: true });
        this.diffs = new Diffs(() => this.client());
        this.logs = new AgentLogs(
            () => this.client(),
            (what, e) => this.output.error(`${what}: ${errorMessage(e)}`),
        );
        this.tree = new AgentsTree(this.store, (agent) => this.diffs.files(agent));
        this.progress = new PreparationProgress(
            (id) => this.store.get(id),
            (token) => void this.client()?.sendNotification(lc.WorkDoneProgressCancelNotification.type, { token }),
        );
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
            this.commandFailed,
            this.connectionChanged,
            this.asked,
            this.progress,
            this.findings,
            vscode.workspace.registerTextDocumentContentProvider(GIT_SCHEME, new GitContentProvider(this.output)),
            registerDisposable(new ConflictDecorations(this.store), (d) => vscode.window.registerFileDecorationProvider(d)),
            this.store.onDidChange(() => this.updateStatus()),
            vscode.workspace.onDidChangeWorkspaceFolders(() => void this.init()),
            // Opening the view connects, also in a window without a repository.
            this.view.onDidChangeVisibility((e) => {
                if (e.visible) void this.ensureStarted();
            }),
            vscode.workspace.onDidChangeConfiguration((e) => {
                // Restart only when the binary really changed (the event also fires when settings are reloaded).
                if (Config.needsRestart(e) && this.starting !== undefined && this.config.serverPath !== this.serverPath) void this.restart();
            }),
            // Ages in the tree are re-rendered each minute while it is visible; the data itself only changes on notifications.
            everyMinute(() => {
                if (this.view.visible) this.tree.refresh();
            }),
        );
        this.updateStatus();
        this.ready = this.init();
    }

    /**
     * Finds the window's repositories and connects only when there is one
     * (or the view is open): a window without a repository starts no daemon
     * until a command or the view needs it.
     */
    private async init(): Promise<void> {
        try {
            await this.updateScope();
            await this.startIfRepository();
        } catch (e) {
            this.output.error(`activation: ${errorMessage(e)}`);
        }
    }

    private async startIfRepository(): Promise<void> {
        if (this.store.getRoots().length > 0 || this.view.visible) await this.ensureStarted();
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

    /** Whether the connection was started (or is being started). */
    isStarted(): boolean {
        return this.starting !== undefined;
    }

    /** The daemon's bgagents/hello answer of the latest connect. */
    daemon(): ext.HelloResult | undefined {
        return this.daemonHello;
    }

    /** Connects unless that was done or is under way; resolves when connected (or the start failed). */
    ensureStarted(): Promise<void> {
        this.starting ??= this.start();
        return this.starting;
    }

    private async start(): Promise<void> {
        await setContext("bgagents.failed", false);
        this.serverPath = this.config.serverPath;
        this.stderr.clear();
        this.setConnection("connecting", "");
        let gaveUp = false;
        let everRunning = false;
        let reported = false;
        const lost = (state: "failed" | "disconnected", message: string): void => {
            if (reported || this.languageClient !== client) return;
            reported = true;
            this.connectionLost(state, message);
        };
        const { client } = createClient(
            this.serverPath,
            this.output,
            {
                completeSendToAgent: (args) => this.completeSendToAgent(args),
                spawned: (agent) => this.spawned(agent),
                inRepository: (file) => this.repositoryOf(file) !== undefined,
                restartable: () => everRunning,
                gaveUp: () => {
                    gaveUp = true;
                },
            },
            this.progress,
            this.stderr,
        );
        this.languageClient = client;
        this.clientDisposables = [
            client.onNotification(ext.agentChanged, (p) => {
                if (p.agent !== null) this.agentChanged(p.agent);
            }),
            client.onNotification(ext.output, (p) => this.logs.onOutput(p)),
            client.onDidChangeState((e) => {
                // Every (re)start: the first, and after `bgagents lsp` or the daemon went away and the client started it again.
                if (e.newState === lc.State.Running) {
                    everRunning = true;
                    reported = false;
                    gaveUp = false;
                    this.stderr.clear();
                    this.progress.model.endAll();
                    this.connecting = this.connected(client, lost);
                }
                if (e.newState === lc.State.Stopped) {
                    // The session's progress will not continue.
                    this.progress.model.endAll();
                    void setContext("bgagents.started", false);
                    // The client gave up restarting, or a restart failed: say so, with `bgagents lsp`'s own words.
                    if (gaveUp) lost("disconnected", "the connection closed and was restarted too often");
                    else if (everRunning && e.oldState === lc.State.Starting) lost("disconnected", "reconnecting failed");
                    else this.updateStatus();
                }
            }),
        ];
        try {
            await client.start();
        } catch (e) {
            // `bgagents lsp` says why on stderr, which may be read after the connection closed.
            await this.stderr.settled(2000);
            lost(everRunning ? "disconnected" : "failed", errorMessage(e));
            return;
        }
        await this.connecting;
    }

    /**
     * The connection could not be made (failed) or was lost for good
     * (disconnected): the status bar and the view say so, and one error
     * shows what `bgagents lsp` said (its stderr; it names the remedy), with
     * Restart and Show Output.
     */
    private connectionLost(state: "failed" | "disconnected", fallback: string): void {
        const said = this.stderr.text();
        const message = said !== "" ? said : fallback;
        this.output.error(`${state === "failed" ? `cannot start "${this.serverPath} lsp"` : "disconnected from the daemon"}: ${message}`);
        void setContext("bgagents.failed", true);
        void setContext("bgagents.started", false);
        this.setConnection(state, message);
        const missing = /ENOENT|not found/i.test(fallback) && said === "";
        const text =
            state === "failed"
                ? `Background Agents: cannot connect to the daemon through "${this.serverPath} lsp": ${message}${missing ? ". Install bgagents or set its path (setting bgagents.path)." : ""}`
                : `Background Agents: disconnected from the daemon: ${message}`;
        const buttons = missing ? ["Open Settings", "Show Output"] : ["Restart", "Show Output"];
        void vscode.window.showErrorMessage(text, ...buttons).then((choice) => {
            if (choice === "Restart") void vscode.commands.executeCommand("bgagents.restart");
            if (choice === "Open Settings") void vscode.commands.executeCommand("workbench.action.openSettings", "bgagents.path");
            if (choice === "Show Output") this.output.show();
        });
    }

    private setConnection(state: ConnectionState, message: string): void {
        this.connection = { state, message };
        this.view.message =
            state === "failed" || state === "disconnected"
                ? `Not connected to the bgagents daemon: ${firstLineOf(message)}. The list below may be out of date; run “Background Agents: Restart Connection to the Daemon”.`
                : "";
        this.updateStatus();
        this.connectionChanged.fire({ ...this.connection });
    }

    /** The connection's state and, when failed or disconnected, why. */
    connectionState(): { state: ConnectionState; message: string } {
        return { ...this.connection };
    }

    /**
     * After each (re)start of the client: introduce the window (hello), list
     * the agents again, announce those that ended or stopped for input while
     * the window was not listening, and follow the open log again.
     */
    private async connected(client: lc.LanguageClient, lost: (state: "disconnected", message: string) => void): Promise<void> {
        try {
            const hello = await client.sendRequest(ext.hello, { client: "vscode", version: String(this.extension.extension.packageJSON["version"] ?? "") });
            this.daemonHello = hello;
            this.output.info(`connected to bgagents daemon ${hello.version} (pid ${hello.pid}, ${hello.home})`);
        } catch (e) {
            this.output.warn(`bgagents/hello failed: ${errorMessage(e)}`);
        }
        try {
            await this.resync();
        } catch (e) {
            lost("disconnected", `bgagents/list failed: ${errorMessage(e)}`);
            return;
        }
        this.setConnection("connected", "");
        this.logs.reconnected();
        this.started.fire();
    }

    async stop(): Promise<void> {
        const c = this.languageClient;
        this.languageClient = undefined;
        this.starting = undefined;
        this.connecting = undefined;
        for (const d of this.clientDisposables) d.dispose();
        this.clientDisposables = [];
        if (c !== undefined) {
            try {
                await c.stop(2000);
            } catch (e) {
                this.output.warn(`stopping the client: ${errorMessage(e)}`);
            }
        }
        await setContext("bgagents.started", false);
        this.progress.model.endAll();
        this.setConnection("idle", "");
    }

    async restart(): Promise<void> {
        await this.stop();
        await this.ensureStarted();
    }

    /** Lists every agent again; announces what changed since the snapshots held. */
    async resync(): Promise<void> {
        const client = this.requireClient();
        const before = this.store.snapshot();
        const res = await client.sendRequest(ext.list, {});
        const changes = this.store.reset(
            (res.agents ?? []).filter((a): a is ext.Agent => a !== null),
            before,
        );
        for (const c of changes) this.applied(c);
        this.findings.retain((id) => this.store.get(id) !== undefined);
        this.progress.model.retain((id) => this.store.get(id));
        await setContext("bgagents.started", true);
    }

    /** A snapshot from the daemon or from a request's result. */
    agentChanged(agent: ext.Agent): void {
        const change = this.store.update(agent);
        if (change !== undefined) this.applied(change);
    }

    /** A newer snapshot was stored: the log follows its state; agents of the window's repositories are announced. */
    private applied(change: AgentChange): void {
        this.logs.onAgent(change.agent);
        this.findings.onAgent(change.agent);
        this.progress.model.onAgent(change.agent);
        if (!this.store.inScope(change.agent)) return;
        // A window on an agent's worktree announces only that agent.
        if (!announcedIn(change.agent, this.worktreeFolders)) return;
        const notice = noticeFor(change.previous, change.agent, this.since);
        if (notice !== undefined) this.showNotice(change.agent, notice);
        for (const n of reviewNotices(change.previous, change.agent, this.since)) this.showReviewNotice(change.agent, n);
        for (const n of conflictNotices(change.previous, change.agent, (id) => this.store.get(id), this.conflictsAnnounced)) this.showConflictNotice(change.agent, n);
    }

    /** A new conflict of agent: with Show (the conflict in the sidebar) and Integrate… (both agents) when they can be integrated. */
    private showConflictNotice(agent: ext.Agent, notice: ConflictNotice): void {
        this.noticeShown.fire({ agent, notice });
        void vscode.window.showWarningMessage(notice.message, ...notice.actions).then((choice) => {
            // Asked for: the sidebar opens if it is closed.
            if (choice === "Show") this.reveal(this.tree.conflictNodeOf(agent.id, notice.index), { select: true, force: true });
            if (choice === "Integrate…") void vscode.commands.executeCommand("bgagents.integrate", this.tree.conflictNodeOf(agent.id, notice.index));
        });
    }

    /** After a spawn from this window: record the agents (several for a fan-out) and select the first (or its group) in the sidebar. */
    spawned(agent: ext.Agent, all: readonly ext.Agent[] = [agent]): void {
        for (const a of all) this.store.update(a);
        if (!all.some((a) => a.id === agent.id)) this.store.update(agent);
        if (!this.view.visible) return;
        const group = agent.group !== undefined && agent.group !== "" ? this.tree.groupAgents(agent.repo, agent.group) : undefined;
        const node = group !== undefined ? this.tree.groupNode(agent.repo, agent.group!) : this.tree.agentNode(agent.id);
        this.reveal(node, { select: true, expand: group !== undefined });
    }

    /**
     * Shows a node in the sidebar (best effort: the node may be gone). Only
     * when the sidebar is open, unless force (the user asked for it: Show,
     * Show Findings), which opens it.
     */
    reveal(node: Node, opts: { select?: boolean; expand?: boolean | number; force?: boolean } = {}): void {
        if (!this.view.visible && opts.force !== true) return;
        this.view.reveal(node, { select: opts.select ?? true, focus: false, expand: opts.expand ?? false }).then(undefined, () => undefined);
    }

    /**
     * A command failed: log it and show it, with buttons when given (each
     * runs its action). The daemon's messages say what to do; they are shown
     * as they are.
     */
    reportFailure(command: string, e: unknown, actions: { title: string; run: () => unknown }[] = []): void {
        const message = errorMessage(e);
        this.output.error(`${command}: ${message}`);
        const code = e instanceof lc.ResponseError ? e.code : undefined;
        this.commandFailed.fire({ command, message, ...(code !== undefined ? { code } : {}) });
        void vscode.window.showErrorMessage(message, ...actions.map((a) => a.title)).then((choice) => {
            actions.find((a) => a.title === choice)?.run();
        });
    }

    /** The end of a review of agent: its verdict, with Show Findings (and Reply or Merge). */
    private showReviewNotice(agent: ext.Agent, notice: ReviewNotice): void {
        const show = notice.severity === "warning" ? vscode.window.showWarningMessage : vscode.window.showInformationMessage;
        this.noticeShown.fire({ agent, notice });
        void show(notice.message, ...notice.actions).then((choice) => {
            switch (choice) {
                case "Show Findings":
                    void vscode.commands.executeCommand("bgagents.showFindings", agent.id, notice.review.id);
                    return;
                case "Reply":
                    void this.replyToReview(agent, notice.review);
                    return;
                case "Merge":
                    void vscode.commands.executeCommand("bgagents.merge", agent.id);
                    return;
            }
        });
    }

    /** Reply on a review's notification: a follow-up to the writer, drafted (on one line) from the review's findings. */
    replyToReview(agent: ext.Agent, review: ext.Review): Thenable<unknown> {
        return vscode.commands.executeCommand("bgagents.followUp", agent.id, { draft: followUpForReview(review) });
    }

    /** An input box is about to be shown (tests wait on it). */
    asking(opts: { title: string; value: string }): void {
        this.asked.fire(opts);
    }

    /** A notification with a link (a pull request): Open opens url in the browser. */
    showLinkNotice(agent: ext.Agent, message: string, url: string): void {
        const notice: LinkNotice = { kind: "link", severity: "info", message, actions: ["Open"], url };
        this.noticeShown.fire({ agent, notice });
        void vscode.window.showInformationMessage(message, ...notice.actions).then((choice) => {
            if (choice === "Open") void vscode.env.openExternal(vscode.Uri.parse(url));
        });
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
        const out: ext.SendToAgentArgs = { ...args };
        // The daemon cut the text from the file on disk (no document is synced): the editor's text is what the user sees.
        const text = editorText(args);
        if (text !== undefined) out.text = text;
        // A caller that says what to do (a keybinding, another extension, a test) is not asked.
        if (args.task !== undefined && args.task.trim() !== "") return out;
        const file = vscode.Uri.parse(args.uri).fsPath;
        const repo = this.repositoryOf(file);
        // Said before any question: the daemon would refuse it after them.
        if (repo === undefined) {
            void vscode.window.showErrorMessage(`${path.basename(file)} is not in a git repository of this window: background agents work on the repositories of the open folders.`);
            return undefined;
        }
        const what = args.diagnostic !== undefined ? `fix “${args.diagnostic}”` : "improve the selected code";
        const choices = await this.askSpawn(repo, {
            title: "Send to background agent",
            defaultTask: `${what} in ${path.basename(file)}`,
        });
        if (choices === undefined) return undefined;
        if (choices.task !== undefined) out.task = choices.task;
        if (choices.agent !== undefined) out.agent = choices.agent;
        if (choices.model !== undefined) out.model = choices.model;
        return out;
    }

    /** Asks for task, agent (those the daemon says the repository can run) and model. */
    askSpawn(repo: string, opts: { title: string; defaultTask?: string }): Promise<SpawnChoices | undefined> {
        return askSpawn(this.config, repo, this.knownModels(), (r) => this.agentsOf(r), opts);
    }

    /** Asks for the reviewer of an agent's work: its agent (another vendor than the writer's first) and model. */
    askReviewer(writer: ext.Agent): Promise<ReviewChoices | undefined> {
        return askReviewer(writer, this.knownModels(), (r) => this.agentsOf(r));
    }

    /** bgagents/agents: what the repository can run; undefined when the daemon cannot say (logged). */
    async agentsOf(repo: string): Promise<ext.AgentsResult | undefined> {
        const c = this.client();
        if (c === undefined) return undefined;
        try {
            return await c.sendRequest(ext.agents, { repo });
        } catch (e) {
            this.output.warn(`bgagents/agents for ${repo}: ${errorMessage(e)}`);
            return undefined;
        }
    }

    /** The open repository containing file, if any. */
    rootOf(file: string): string | undefined {
        return this.store
            .getRoots()
            .filter((r) => isInside(file, r))
            .sort((a, b) => b.length - a.length)[0];
    }

    /** The window's repository (main checkout) a file belongs to: in a root, or in a workspace folder that is a linked worktree of one. */
    repositoryOf(file: string): string | undefined {
        return this.rootOf(file) ?? this.linkedFolders.find((l) => isInside(file, l.folder))?.repo;
    }

    /** The linked worktree folder of the window a file is in (an agent's worktree opened as a folder), if any. */
    linkedFolderOf(file: string): string | undefined {
        return this.linkedFolders.find((l) => isInside(file, l.folder))?.folder;
    }

    /** The window's folders in linked worktrees of repo (spawns there start from that worktree's branch). */
    linkedFoldersOf(repo: string): string[] {
        return this.linkedFolders.filter((l) => l.repo === repo).map((l) => l.folder);
    }

    /** Models agents used before, with the provider that ran them, offered in the model quick pick. */
    knownModels(): { model: string; provider: string }[] {
        return this.store
            .all()
            .filter((a) => a.model !== "")
            .map((a) => ({ model: a.model, provider: a.provider ?? "" }));
    }

    /** Finds the window's repositories again (workspace folders changed). */
    private async updateScope(): Promise<void> {
        const folders = (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === "file").map((f) => f.uri.fsPath);
        const roots = await findRepositories(this.output, folders);
        // Folders in a linked worktree (an agent's, opened with Open Worktree): outside their main checkout.
        const linked: { folder: string; repo: string }[] = [];
        for (const f of folders) {
            const main = await mainCheckout(undefined, f);
            if (main !== undefined && !isInside(f, main)) linked.push({ folder: f, repo: main });
        }
        this.linkedFolders = linked;
        this.worktreeFolders = linked.length === folders.length ? linked.map((l) => l.folder) : [];
        this.store.setScope({ roots, folders });
        await setContext("bgagents.hasRepository", roots.length > 0);
    }

    private updateStatus(): void {
        const { state, message } = this.connection;
        if (state === "failed" || state === "disconnected") {
            this.statusBar.text = state === "failed" ? "$(error) bgagents: not connected" : "$(debug-disconnect) bgagents: disconnected";
            this.statusBar.tooltip = `Background Agents: ${state === "failed" ? "cannot connect to the daemon" : "disconnected from the daemon"}: ${message}\nClick to restart the connection.`;
            this.statusBar.command = "bgagents.restart";
            this.statusBar.accessibilityInformation = { label: `Background Agents: ${state}` };
            this.showStatusBar(true);
            return;
        }
        // A window without a repository has nothing to count.
        if (this.store.getRoots().length === 0) {
            this.showStatusBar(false);
            return;
        }
        const c = this.store.counts();
        this.statusBar.text = statusText(c);
        const version = this.daemonHello !== undefined ? ` (daemon ${this.daemonHello.version})` : "";
        this.statusBar.tooltip = statusTooltip(c) + version;
        this.statusBar.command = "workbench.view.extension.bgagents";
        this.statusBar.accessibilityInformation = { label: statusTooltip(c) };
        this.showStatusBar(true);
    }

    private showStatusBar(visible: boolean): void {
        this.statusBarVisible = visible;
        if (visible) this.statusBar.show();
        else this.statusBar.hide();
    }

    /** The status bar's text (for tests). */
    statusBarText(): string {
        return this.statusBar.text;
    }

    /** Whether the status bar item is shown (for tests). */
    statusBarShown(): boolean {
        return this.statusBarVisible;
    }

    dispose(): void {
        void this.stop();
        for (const d of this.disposables) d.dispose();
    }
}

/** The editor's text of the action's range when its document is open (saved or not); undefined otherwise. */
function editorText(args: ext.SendToAgentArgs): string | undefined {
    if (args.range === undefined || args.range === null) return undefined;
    const uri = vscode.Uri.parse(args.uri).toString();
    const doc = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri);
    if (doc === undefined) return undefined;
    const r = args.range;
    return doc.getText(new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character));
}

export function errorMessage(e: unknown): string {
    if (e instanceof Error) return e.message;
    return String(e);
}

/** Registers a disposable provider and disposes both together. */
function registerDisposable<T extends vscode.Disposable>(provider: T, register: (p: T) => vscode.Disposable): vscode.Disposable {
    const registration = register(provider);
    return {
        dispose: () => {
            registration.dispose();
            provider.dispose();
        },
    };
}

/** A notification with a link to open (a pull request). */
export interface LinkNotice {
    kind: "link";
    severity: "info";
    message: string;
    actions: ["Open"];
    url: string;
}

/** How the connection to the daemon is. */
export type ConnectionState = "idle" | "connecting" | "connected" | "failed" | "disconnected";

function firstLineOf(s: string): string {
    const line = s.split("\n", 1)[0] ?? "";
    return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

function setContext(key: string, value: unknown): Thenable<unknown> {
    return vscode.commands.executeCommand("setContext", key, value);
}

function everyMinute(f: () => void): vscode.Disposable {
    const t = setInterval(f, 60_000);
    return { dispose: () => clearInterval(t) };
}
