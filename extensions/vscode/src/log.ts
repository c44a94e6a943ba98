// "Show Log": one output channel, "Agent Log", that shows one agent's
// activity at a time and follows it while the agent is live (follow.ts has
// the requests). Showing another agent's log replaces it and unfollows the
// previous agent.

import * as vscode from "vscode";
import type * as lc from "vscode-languageclient/node";

import { formatEvent } from "./events";
import { LogFollower } from "./follow";
import * as ext from "./lsp_ext";
import { stateLabel } from "./model";

export const LOG_CHANNEL = "Agent Log";

interface Shown {
    follower: LogFollower;
    /** The first failure since the log was shown (or retried) was shown to the user. */
    reported: boolean;
    /** The last lines printed, for tests and for copying (bounded). */
    recent: string[];
}

const RECENT = 2000;

export class AgentLogs implements vscode.Disposable {
    private channel: vscode.OutputChannel | undefined;
    private shown: Shown | undefined;
    private readonly appended = new vscode.EventEmitter<string>();
    /** Fires with the agent id after lines were printed to its log. */
    readonly onDidAppend = this.appended.event;
    private readonly followChanged = new vscode.EventEmitter<{ id: string; following: boolean }>();
    /** Fires when the daemon starts or stops sending an agent's events to this window. */
    readonly onDidChangeFollowing = this.followChanged.event;
    private readonly reportedFailure = new vscode.EventEmitter<{ id: string; message: string }>();
    /** Fires when a failure to read a log was shown to the user (tests wait on it). */
    readonly onDidReportFailure = this.reportedFailure.event;

    constructor(
        private readonly client: () => lc.LanguageClient | undefined,
        private readonly onError: (what: string, e: unknown) => void,
    ) {}

    /** Shows the agent's log in the channel (replacing another agent's) and follows it while the agent is live. */
    async show(agent: ext.Agent): Promise<void> {
        const channel = (this.channel ??= vscode.window.createOutputChannel(LOG_CHANNEL));
        if (this.shown?.follower.agentId === agent.id) {
            channel.show(true);
            // After a failed read (no connection, the daemon went away): read what is missing now.
            if (this.shown.follower.hasFailed()) {
                this.shown.reported = false;
                await this.shown.follower.retry();
            }
            return;
        }
        void this.shown?.follower.stop();
        channel.clear();
        channel.appendLine(`Agent ${agent.name} (${agent.id}) — ${agent.agent}${agent.model !== "" ? `, ${agent.model}` : ""}`);
        channel.appendLine(`Task: ${agent.task}`);
        channel.appendLine(`Branch ${agent.branch} from ${agent.base} (${agent.baseCommit.slice(0, 7)}), worktree ${agent.worktree}`);
        channel.appendLine(`State when opened: ${stateLabel(agent.state)}`);
        channel.appendLine("");
        const recent: string[] = [];
        // Filled in below; the follower reports its failures through it.
        const shown: Shown = { follower: undefined as unknown as LogFollower, recent, reported: false };
        const follower: LogFollower = new LogFollower(
            agent.id,
            agent.state,
            {
                log: (p) => this.requireClient().sendRequest(ext.log, p),
                unfollow: async (id) => {
                    // Without a connection there is no subscription left to drop.
                    await this.client()?.sendRequest(ext.unfollow, { id });
                },
            },
            (events) => this.print(follower, recent, events),
            (e) => this.failed(shown, agent, e),
            (following) => this.followChanged.fire({ id: agent.id, following }),
        );
        shown.follower = follower;
        this.shown = shown;
        channel.show(true);
        await shown.follower.start();
    }

    /** The agent whose log is shown, if any. */
    shownAgent(): string | undefined {
        return this.shown?.follower.agentId;
    }

    /** The last lines printed for an agent, undefined when its log is not the one shown. */
    recentLines(id: string): readonly string[] | undefined {
        return this.shown?.follower.agentId === id ? this.shown.recent : undefined;
    }

    /** Whether the daemon sends this window the agent's new events. */
    isFollowing(id: string): boolean {
        return this.shown?.follower.agentId === id && this.shown.follower.isFollowing();
    }

    /** Resolves when the shown log's requests so far are done (for tests). */
    idle(): Promise<void> {
        return this.shown?.follower.idle() ?? Promise.resolve();
    }

    /** bgagents/output */
    onOutput(params: ext.OutputParams): void {
        if (this.shown?.follower.agentId !== params.id) return;
        this.shown.follower.onOutput(params.events ?? []);
    }

    /** A new snapshot of an agent: the shown log follows or unfollows as its state says. */
    onAgent(agent: ext.Agent): void {
        if (this.shown?.follower.agentId === agent.id) void this.shown.follower.onState(agent.state);
    }

    /** After a (re)connect: subscribe again and fetch what was missed. */
    reconnected(): void {
        void this.shown?.follower.reconnected();
    }

    /** A request for the log failed: logged, and the first failure shown (later ones only logged), with Retry. */
    private failed(shown: Shown, agent: ext.Agent, e: unknown): void {
        this.onError(`Cannot read the log of agent ${agent.name}`, e);
        if (shown.reported || this.shown !== shown) return;
        shown.reported = true;
        const message = e instanceof Error ? e.message : String(e);
        this.reportedFailure.fire({ id: agent.id, message });
        void vscode.window.showErrorMessage(`Cannot read the log of agent ${agent.name}: ${message}`, "Retry").then((choice) => {
            if (choice === "Retry" && this.shown === shown) {
                shown.reported = false;
                void shown.follower.retry();
            }
        });
    }

    private requireClient(): lc.LanguageClient {
        const c = this.client();
        if (c === undefined) throw new Error("not connected to the bgagents daemon");
        return c;
    }

    private print(follower: LogFollower, recent: string[], events: readonly ext.Event[]): void {
        if (this.shown?.follower !== follower || this.channel === undefined) return;
        for (const e of events) {
            const line = formatEvent(e);
            if (line === "") continue;
            this.channel.appendLine(line);
            recent.push(line);
            if (recent.length > RECENT) recent.splice(0, recent.length - RECENT);
        }
        this.appended.fire(follower.agentId);
    }

    dispose(): void {
        void this.shown?.follower.stop();
        this.shown = undefined;
        this.channel?.dispose();
        this.appended.dispose();
        this.followChanged.dispose();
        this.reportedFailure.dispose();
    }
}
