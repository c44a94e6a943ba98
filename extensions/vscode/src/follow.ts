// Following one agent's log: which bgagents/log and bgagents/unfollow
// requests are sent, and when (docs/protocol.md §4.7, §4.8, §5.2). No
// `vscode` import: unit-tested against a scripted daemon.
//
// - The log is read from the start; while the agent is live the first page
//   also subscribes (follow), so later events come as bgagents/output.
// - Events are printed once and in order (EventCursor). Notifications that
//   arrive before the page they follow, or after a dropped one, are held and
//   the gap is fetched from the next expected seq.
// - When the agent is no longer live, the rest of its log is fetched and the
//   subscription is dropped (unfollow). A follow-up makes it live again: it
//   is followed again from where the log stopped.
// - stop() (the log was replaced or closed) unfollows.
// Requests are sent one at a time, so an unfollow never overtakes a follow.

import { EventCursor } from "./events";
import type { Event, LogParams, LogResult, State } from "./lsp_ext";
import { isLive } from "./model";

/** The two daemon requests a follower sends. */
export interface LogRpc {
    log(params: LogParams): Promise<LogResult>;
    unfollow(id: string): Promise<void>;
}

export class LogFollower {
    readonly cursor = new EventCursor();
    /** This session is subscribed to the agent's new events. */
    private following = false;
    /** The agent may still append events (queued, provisioning, running). */
    private live: boolean;
    private stopped = false;
    /** The last queued request; each waits for the one before. */
    private tail: Promise<void> = Promise.resolve();
    /** A sync is queued and has not started yet (one is enough). */
    private syncQueued = false;
    /** The next sync reads the log even without a gap (start, a state change, a reconnect). */
    private fetchWanted = false;
    /** A request failed since the last sync that succeeded: the log may be incomplete. */
    private failedSinceSync = false;

    constructor(
        readonly agentId: string,
        state: State,
        private readonly rpc: LogRpc,
        private readonly print: (events: Event[]) => void,
        private readonly onError: (e: unknown) => void,
        /** Called when the subscription starts or ends. */
        private readonly onFollowChange: (following: boolean) => void = () => {},
    ) {
        this.live = isLive(state);
    }

    /** Whether the daemon currently sends this session the agent's events. */
    isFollowing(): boolean {
        return this.following;
    }

    /** Reads the log from the start, and follows it while the agent is live. Resolves when that is done. */
    start(): Promise<void> {
        return this.requestSync(true);
    }

    /** bgagents/output for this agent. */
    onOutput(events: readonly Event[]): void {
        if (this.stopped) return;
        const r = this.cursor.push(events);
        if (r.events.length > 0) this.print(r.events);
        if (r.gapFrom !== undefined) void this.requestSync(false);
    }

    /** The agent's state as the latest snapshot says. */
    onState(state: State): Promise<void> {
        const live = isLive(state);
        if (live === this.live) return this.tail;
        this.live = live;
        return this.requestSync(true);
    }

    /** After a reconnect the new session follows nothing: subscribe again and fetch what was missed. */
    reconnected(): Promise<void> {
        this.following = false;
        return this.requestSync(true);
    }

    /** The log was replaced or closed: unfollow. */
    stop(): Promise<void> {
        if (this.stopped) return this.tail;
        this.stopped = true;
        return this.enqueue(() => this.unfollow());
    }

    /** Whether a request failed and no sync has succeeded since (Show Log again retries). */
    hasFailed(): boolean {
        return this.failedSinceSync;
    }

    /** Reads what is missing again (and follows again while live) after a failure. */
    retry(): Promise<void> {
        return this.requestSync(true);
    }

    /** Resolves when every request queued so far is done. */
    idle(): Promise<void> {
        return this.tail;
    }

    private requestSync(fetch: boolean): Promise<void> {
        if (fetch) this.fetchWanted = true;
        if (this.stopped || this.syncQueued) return this.tail;
        this.syncQueued = true;
        return this.enqueue(async () => {
            this.syncQueued = false;
            await this.sync();
        });
    }

    private enqueue(op: () => Promise<void>): Promise<void> {
        this.tail = this.tail.then(op).catch((e: unknown) => {
            this.failedSinceSync = true;
            this.onError(e);
        });
        return this.tail;
    }

    /** Pages from the next expected seq until the log is read and no gap is left; then unfollows an agent that ended. */
    private async sync(): Promise<void> {
        // A gap may have been filled by the sync before this one.
        const wanted = this.fetchWanted || this.cursor.hasGap() || (this.live && !this.following);
        this.fetchWanted = false;
        while (wanted && !this.stopped) {
            const follow = this.live && !this.following;
            const from = this.cursor.next;
            const res = await this.rpc.log({ id: this.agentId, from, follow });
            if (follow) {
                this.following = true;
                this.onFollowChange(true);
            }
            const r = this.cursor.page(res.events ?? [], res.next);
            if (r.events.length > 0) this.print(r.events);
            // Another page when this one was full or events are held behind a gap, unless nothing moved (then the next notification retries).
            if (!(res.more || r.gapFrom !== undefined) || this.cursor.next <= from) break;
        }
        if (!this.live) await this.unfollow();
        this.failedSinceSync = false;
    }

    private async unfollow(): Promise<void> {
        if (!this.following) return;
        this.following = false;
        this.onFollowChange(false);
        await this.rpc.unfollow(this.agentId);
    }
}
