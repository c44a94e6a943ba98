import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { LogFollower, type LogRpc } from "../../src/follow";
import type { Event, LogParams, LogResult } from "../../src/lsp_ext";

const ID = "6fe56ba08ed4";
const ev = (seq: number): Event => ({ seq, time: "2026-11-21T16:00:07.3Z", kind: "output", stream: "stdout", text: `line ${seq}` });

/** A daemon's log of one agent, answering as docs/protocol.md §4.7 says; it records the requests. */
class Daemon implements LogRpc {
    log_: Event[] = [];
    calls: string[] = [];
    following = false;
    pageSize = 5000;
    /** Runs while a bgagents/log request is being answered (the reply is sent after it). */
    during: ((p: LogParams) => void) | undefined;

    append(n: number): Event[] {
        const out: Event[] = [];
        for (let i = 0; i < n; i++) out.push(ev(this.log_.length + 1)), this.log_.push(out[out.length - 1]!);
        return out;
    }

    async log(p: LogParams): Promise<LogResult> {
        this.calls.push(`log ${p.from ?? 1}${p.follow === true ? " follow" : ""}`);
        const from = Math.max(p.from ?? 1, 1);
        const events = this.log_.filter((e) => e.seq >= from).slice(0, this.pageSize);
        if (p.follow === true) this.following = true;
        const next = events.length > 0 ? events[events.length - 1]!.seq + 1 : from;
        const during = this.during;
        this.during = undefined;
        await Promise.resolve();
        during?.(p);
        return { id: ID, events, next, more: events.length === this.pageSize, state: "running" };
    }

    async unfollow(id: string): Promise<void> {
        assert.equal(id, ID);
        this.calls.push("unfollow");
        this.following = false;
    }
}

function setup(state: "running" | "succeeded" = "running") {
    const daemon = new Daemon();
    const printed: number[] = [];
    const errors: unknown[] = [];
    const follower = new LogFollower(
        ID,
        state,
        daemon,
        (events) => printed.push(...events.map((e) => e.seq)),
        (e) => errors.push(e),
    );
    return { daemon, printed, errors, follower };
}

suite("LogFollower", () => {
    test("lines that stream in while the first page is fetched are neither lost nor doubled", async () => {
        const { daemon, printed, errors, follower } = setup();
        daemon.append(2);
        // While the first page (1-2) is on its way, the agent prints 3, 4, 5;
        // only 5's notification arrives before the reply (3 and 4 were dropped).
        daemon.during = () => {
            const more = daemon.append(3);
            follower.onOutput([more[2]!]);
        };
        await follower.start();
        await follower.idle();
        assert.deepEqual(printed, [1, 2, 3, 4, 5]);
        assert.deepEqual(daemon.calls, ["log 1 follow", "log 3"]);
        assert.ok(follower.isFollowing());
        // Later notifications follow on; repeats are dropped.
        const later = daemon.append(1);
        follower.onOutput([ev(5), ...later]);
        assert.deepEqual(printed, [1, 2, 3, 4, 5, 6]);
        assert.deepEqual(errors, []);
    });

    test("a full page is followed by the next, from its next", async () => {
        const { daemon, printed, follower } = setup("succeeded");
        daemon.pageSize = 2;
        daemon.append(5);
        await follower.start();
        assert.deepEqual(printed, [1, 2, 3, 4, 5]);
        assert.deepEqual(daemon.calls, ["log 1", "log 3", "log 5"]);
    });

    test("the log of an agent that has ended is read without following it", async () => {
        const { daemon, printed, follower } = setup("succeeded");
        daemon.append(3);
        await follower.start();
        assert.deepEqual(printed, [1, 2, 3]);
        assert.deepEqual(daemon.calls, ["log 1"]);
        assert.equal(daemon.following, false);
    });

    test("when the agent ends, the rest of the log is fetched and it is unfollowed; a follow-up follows it again", async () => {
        const { daemon, printed, follower } = setup();
        daemon.append(2);
        await follower.start();
        assert.equal(daemon.following, true);
        // The last lines' notifications were dropped; then the agent ended.
        daemon.append(2);
        await follower.onState("succeeded");
        assert.deepEqual(printed, [1, 2, 3, 4]);
        assert.deepEqual(daemon.calls, ["log 1 follow", "log 3", "unfollow"]);
        assert.equal(daemon.following, false);
        assert.equal(follower.isFollowing(), false);
        // Another snapshot in the same state changes nothing.
        await follower.onState("failed");
        assert.equal(daemon.calls.length, 3);
        // A follow-up: the message event and the new run's output.
        daemon.append(2);
        await follower.onState("running");
        assert.deepEqual(daemon.calls.slice(3), ["log 5 follow"]);
        assert.deepEqual(printed, [1, 2, 3, 4, 5, 6]);
        assert.equal(daemon.following, true);
    });

    test("stop (another agent's log replaces it) unfollows, and later notifications are ignored", async () => {
        const { daemon, printed, follower } = setup();
        daemon.append(1);
        await follower.start();
        await follower.stop();
        assert.deepEqual(daemon.calls, ["log 1 follow", "unfollow"]);
        assert.equal(daemon.following, false);
        follower.onOutput(daemon.append(1));
        await follower.onState("succeeded");
        assert.deepEqual(printed, [1]);
        assert.equal(daemon.calls.length, 2);
    });

    test("after a reconnect the new session follows again from where the log stopped", async () => {
        const { daemon, printed, follower } = setup();
        daemon.append(2);
        await follower.start();
        daemon.following = false; // the old session is gone
        daemon.append(1);
        await follower.reconnected();
        assert.deepEqual(daemon.calls, ["log 1 follow", "log 3 follow"]);
        assert.deepEqual(printed, [1, 2, 3]);
        assert.equal(daemon.following, true);
    });

    test("unfollow is never sent before the follow it undoes", async () => {
        const { daemon, follower } = setup();
        daemon.append(1);
        // The log is replaced while its first request (which subscribes) is under way.
        let stopped: Promise<void> | undefined;
        daemon.during = () => {
            stopped = follower.stop();
        };
        await follower.start();
        await stopped;
        assert.deepEqual(daemon.calls, ["log 1 follow", "unfollow"]);
        assert.equal(daemon.following, false);
    });

    test("stopped before its first request: nothing is sent", async () => {
        const { daemon, follower } = setup();
        const started = follower.start();
        await follower.stop();
        await started;
        assert.deepEqual(daemon.calls, []);
    });

    test("a failed read is reported and remembered; retrying reads the log and follows it", async () => {
        const { daemon, printed, errors, follower } = setup("running");
        daemon.append(3);
        const real = daemon.log.bind(daemon);
        daemon.log = () => Promise.reject(new Error("not connected to the bgagents daemon"));
        await follower.start();
        assert.equal(errors.length, 1);
        assert.ok(follower.hasFailed());
        assert.deepEqual(printed, []);
        daemon.log = real;
        await follower.retry();
        assert.ok(!follower.hasFailed());
        assert.deepEqual(printed, [1, 2, 3]);
        assert.ok(follower.isFollowing());
        assert.deepEqual(daemon.calls, ["log 1 follow"]);
    });
});
