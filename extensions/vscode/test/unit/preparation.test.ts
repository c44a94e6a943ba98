import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { Preparations, type PrepAgent, type PrepDisplay } from "../../src/preparation";

/** Fake displays: what was shown where, and what each said. */
function fakeUI() {
    const shown: { where: "status" | "notification"; title: string; messages: string[]; ended: boolean; cancel?: () => void }[] = [];
    const make = (where: "status" | "notification", title: string, first?: string, cancel?: () => void): PrepDisplay => {
        const d = { where, title, messages: first !== undefined ? [first] : [], ended: false, ...(cancel !== undefined ? { cancel } : {}) };
        shown.push(d);
        return { report: (m) => d.messages.push(m), end: () => (d.ended = true) };
    };
    return { shown, ui: { queued: (t: string, m: string) => make("status", t, m), preparing: (t: string, c: () => void) => make("notification", t, undefined, c) } };
}

suite("preparation progress", () => {
    const agents = new Map<string, PrepAgent>();
    const lookup = (id: string) => agents.get(id);

    test("queued in the status bar; a notification once the worktree is prepared; it ends with the daemon's end", () => {
        const { shown, ui } = fakeUI();
        const p = new Preparations(ui, lookup, () => {});
        p.begin("bgagents-a1", "bgagents: preparing fix", "queued");
        assert.deepEqual(shown.map((d) => [d.where, d.title]), [["status", "bgagents: fix"]]);
        p.report("bgagents-a1", "creating worktree /tmp/x");
        assert.deepEqual(shown.map((d) => [d.where, d.title, d.ended]), [
            ["status", "bgagents: fix", true],
            ["notification", "bgagents: preparing fix", false],
        ]);
        assert.deepEqual(shown[1]!.messages, ["creating worktree /tmp/x"]);
        p.end("bgagents-a1");
        assert.ok(shown[1]!.ended);
        assert.deepEqual(p.active(), []);
    });

    test("a pipeline step waiting for its predecessor stays in the status bar, and ends when a snapshot shows it failed (no end from the daemon)", () => {
        const { shown, ui } = fakeUI();
        const p = new Preparations(ui, lookup, () => {});
        p.begin("bgagents-s1", "bgagents: preparing step", "queued");
        p.report("bgagents-s1", "queued: waiting for dep to succeed");
        assert.deepEqual(shown.map((d) => d.where), ["status"]);
        assert.deepEqual(shown[0]!.messages, ["queued", "queued: waiting for dep to succeed"]);
        p.onAgent({ id: "s1", state: "queued" });
        assert.ok(!shown[0]!.ended);
        p.onAgent({ id: "s1", state: "failed" });
        assert.ok(shown[0]!.ended);
        assert.deepEqual(p.active(), []);
    });

    test("a reconnect or a new list ends what the old session left; an agent already running shows nothing", () => {
        const { shown, ui } = fakeUI();
        const p = new Preparations(ui, lookup, () => {});
        p.begin("bgagents-r1", "bgagents: preparing one", "creating worktree");
        p.begin("bgagents-r2", "bgagents: preparing two", "queued");
        p.retain((id) => (id === "r1" ? { state: "provisioning" } : undefined));
        assert.deepEqual(p.active(), ["bgagents-r1"]);
        p.endAll();
        assert.ok(shown.every((d) => d.ended));
        agents.set("r3", { id: "r3", name: "three", task: "t", state: "running" });
        p.begin("bgagents-r3", "bgagents: preparing three", "queued");
        assert.equal(shown.length, 2);
    });

    test("the variants of a fan-out share one notification; cancelling it cancels each variant still prepared", () => {
        const { shown, ui } = fakeUI();
        const cancelled: string[] = [];
        for (const v of ["v1", "v2"]) agents.set(v, { id: v, name: `ways-${v}`, task: "Two ways to say it", state: "provisioning", group: "g1" });
        const p = new Preparations(ui, lookup, (t) => cancelled.push(t));
        p.begin("bgagents-v1", "bgagents: preparing ways-v1", "creating worktree a");
        p.begin("bgagents-v2", "bgagents: preparing ways-v2", "creating worktree b");
        assert.deepEqual(shown.map((d) => [d.where, d.title]), [["notification", "bgagents: preparing variants of “Two ways to say it”"]]);
        assert.deepEqual(shown[0]!.messages, ["ways-v1: creating worktree a", "ways-v2: creating worktree b"]);
        shown[0]!.cancel!();
        assert.deepEqual(cancelled, ["bgagents-v1", "bgagents-v2"]);
        p.end("bgagents-v1");
        assert.ok(!shown[0]!.ended, "one variant is still prepared");
        p.onAgent({ id: "v2", state: "cancelled" });
        assert.ok(shown[0]!.ended);
    });
});
