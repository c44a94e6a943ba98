// "Show Log": one output channel per agent, following its events live
// (bgagents/log with follow, then bgagents/output notifications).

import * as vscode from "vscode";
import type * as lc from "vscode-languageclient/node";

import { EventCursor, formatEvent } from "./events";
import * as ext from "./lsp_ext";
import { stateLabel } from "./model";

interface Followed {
    agentId: string;
    channel: vscode.OutputChannel;
    cursor: EventCursor;
    /** A bgagents/log request is under way. */
    fetching: boolean;
    /** The last lines printed, for tests and for copying (bounded). */
    recent: string[];
}

const RECENT = 2000;

export class AgentLogs implements vscode.Disposable {
    private readonly followed = new Map<string, Followed>();
    private readonly appended = new vscode.EventEmitter<string>();
    /** Fires with the agent id after lines were printed to its log. */
    readonly onDidAppend = this.appended.event;

    constructor(
        private readonly client: () => lc.LanguageClient | undefined,
        private readonly onError: (what: string, e: unknown) => void,
    ) {}

    /** Opens (or reveals) the agent's log and follows it. */
    async show(agent: ext.Agent): Promise<void> {
        let f = this.followed.get(agent.id);
        if (f === undefined) {
            const channel = vscode.window.createOutputChannel(`Agent: ${agent.name}`);
            f = { agentId: agent.id, channel, cursor: new EventCursor(), fetching: false, recent: [] };
            this.followed.set(agent.id, f);
            channel.appendLine(`Agent ${agent.name} (${agent.id}) — ${agent.agent}${agent.model !== "" ? `, ${agent.model}` : ""}`);
            channel.appendLine(`Task: ${agent.task}`);
            channel.appendLine(`Branch ${agent.branch} from ${agent.base} (${agent.baseCommit.slice(0, 7)}), worktree ${agent.worktree}`);
            channel.appendLine(`State now: ${stateLabel(agent.state)}`);
            channel.appendLine("");
            f.channel.show(true);
            await this.fetch(f, true);
        } else {
            f.channel.show(true);
        }
    }

    /** The last lines printed for an agent, undefined when its log is not open. */
    recentLines(id: string): readonly string[] | undefined {
        return this.followed.get(id)?.recent;
    }

    /** bgagents/output */
    onOutput(params: ext.OutputParams): void {
        const f = this.followed.get(params.id);
        if (f === undefined) return;
        const { events, gapFrom } = f.cursor.push(params.events ?? []);
        this.print(f, events);
        if (gapFrom !== undefined && !f.fetching) {
            f.cursor.refetch();
            void this.fetch(f, false);
        }
    }

    /** After a reconnect: subscribe again and fetch what was missed. */
    resubscribe(): void {
        for (const f of this.followed.values()) {
            f.cursor.refetch();
            void this.fetch(f, true);
        }
    }

    private async fetch(f: Followed, follow: boolean): Promise<void> {
        const client = this.client();
        if (client === undefined) return;
        f.fetching = true;
        try {
            let more = true;
            let first = true;
            while (more) {
                const res = await client.sendRequest(ext.log, { id: f.agentId, from: f.cursor.next, follow: follow && first });
                first = false;
                this.print(f, f.cursor.page(res.events ?? [], res.next));
                more = res.more;
            }
        } catch (e) {
            this.onError(`Cannot read the log of agent ${f.agentId}`, e);
        } finally {
            f.fetching = false;
        }
    }

    private print(f: Followed, events: readonly ext.Event[]): void {
        if (events.length === 0) return;
        for (const e of events) {
            const line = formatEvent(e);
            if (line === "") continue;
            f.channel.appendLine(line);
            f.recent.push(line);
            if (f.recent.length > RECENT) f.recent.splice(0, f.recent.length - RECENT);
        }
        this.appended.fire(f.agentId);
    }

    dispose(): void {
        for (const f of this.followed.values()) f.channel.dispose();
        this.followed.clear();
        this.appended.dispose();
    }
}
