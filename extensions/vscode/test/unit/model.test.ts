import assert from "node:assert/strict";
import { describe as suite, test } from "node:test";

import { allStates } from "../../src/lsp_ext";
import {
    abilities,
    applySnapshot,
    buildTree,
    contextValue,
    count,
    describe,
    formatAge,
    formatCost,
    formatDiffStat,
    formatTokens,
    isLive,
    noticeFor,
    stateIcon,
    stateLabel,
    statusText,
    statusTooltip,
    tooltip,
} from "../../src/model";
import { agent } from "./fixtures";

const NOW = new Date("2026-11-21T16:10:00Z");

suite("states", () => {
    test("every state has an icon and a label", () => {
        for (const s of allStates) {
            assert.match(stateIcon(s).id, /^[a-z-]+(~spin)?$/, s);
            assert.ok(stateLabel(s).length > 0);
        }
        assert.equal(stateLabel("needs_input"), "needs input");
        assert.equal(stateIcon("running").id, "sync~spin");
        assert.equal(stateIcon("succeeded").id, "pass");
        assert.equal(stateIcon("failed").id, "error");
    });

    test("live states", () => {
        assert.deepEqual(
            allStates.filter((s) => isLive(s)),
            ["queued", "provisioning", "running"],
        );
    });
});

suite("abilities", () => {
    test("a succeeded agent can be opened, diffed, continued, merged and discarded, not cancelled", () => {
        assert.deepEqual(abilities(agent()), { open: true, diff: true, followUp: true, cancel: false, merge: true, discard: true });
        assert.equal(contextValue(agent()), "agent state-succeeded open diff followup merge discard");
    });

    test("a running agent can be opened, diffed, cancelled and (with force) discarded", () => {
        assert.deepEqual(abilities(agent({ state: "running" })), { open: true, diff: true, followUp: false, cancel: true, merge: false, discard: true });
    });

    test("a queued agent has no worktree yet", () => {
        const a = abilities(agent({ state: "queued" }));
        assert.equal(a.open, false);
        assert.equal(a.diff, false);
        assert.equal(a.cancel, true);
    });

    test("needs_input: reply, cancel, merge", () => {
        const a = abilities(agent({ state: "needs_input" }));
        assert.ok(a.followUp && a.cancel && a.merge && a.open);
    });

    test("a cleaned-up agent can only be discarded", () => {
        assert.deepEqual(abilities(agent({ cleaned: true })), { open: false, diff: false, followUp: false, cancel: false, merge: false, discard: true });
    });

    test("merged and discarded agents can only be diffed (against their recorded head)", () => {
        for (const state of ["merged", "discarded"] as const) {
            assert.deepEqual(abilities(agent({ state })), { open: false, diff: true, followUp: false, cancel: false, merge: false, discard: false }, state);
        }
    });

    test("cancelled agents keep their worktree for merge or discard but cannot be continued", () => {
        const a = abilities(agent({ state: "cancelled" }));
        assert.ok(a.open && a.merge && a.discard && !a.followUp && !a.cancel);
    });
});

suite("formatting", () => {
    test("ages", () => {
        assert.equal(formatAge("2026-11-21T16:10:00Z", NOW), "now");
        assert.equal(formatAge("2026-11-21T16:09:15Z", NOW), "45s");
        assert.equal(formatAge("2026-11-21T15:58:00Z", NOW), "12m");
        assert.equal(formatAge("2026-11-21T13:10:00Z", NOW), "3h");
        assert.equal(formatAge("2026-11-18T16:10:00Z", NOW), "3d");
        assert.equal(formatAge("not a time", NOW), "");
    });

    test("diffstat", () => {
        assert.equal(formatDiffStat({ commits: 1, files: 2, additions: 10, deletions: 3 }), "2 files +10 −3");
        assert.equal(formatDiffStat({ commits: 1, files: 1, additions: 1, deletions: 0 }), "1 file +1 −0");
        assert.equal(formatDiffStat({ commits: 0, files: 0, additions: 0, deletions: 0 }), "");
    });

    test("cost and tokens", () => {
        const u = { inputTokens: 1200, outputTokens: 300, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0.4216 };
        assert.equal(formatCost(u), "$0.42");
        assert.equal(formatCost({ ...u, costEstimated: true }), "~$0.42");
        assert.equal(formatCost({ ...u, costUsd: 0.001 }), "<$0.01");
        assert.equal(formatCost({ ...u, costUsd: 0 }), "");
        assert.equal(formatTokens(u), "1.5k tokens");
        assert.equal(formatTokens({ ...u, inputTokens: 0, outputTokens: 0 }), "");
    });

    test("the sidebar description: branch, age, diffstat, cost", () => {
        assert.equal(describe(agent(), NOW), "bgagents/fix-add · 10m · 2 files +10 −3");
        const withCost = agent({ usage: { inputTokens: 5, outputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 1.5 } });
        assert.equal(describe(withCost, NOW), "bgagents/fix-add · 10m · 2 files +10 −3 · $1.50");
        assert.equal(describe(agent({ cleaned: true }), NOW), "bgagents/fix-add · 10m · no changes");
        assert.equal(describe(agent({ state: "running", diff: { commits: 0, files: 0, additions: 0, deletions: 0 } }), NOW), "bgagents/fix-add · 10m");
    });

    test("tooltip names the state, task, error and questions", () => {
        const t = tooltip(agent({ state: "needs_input", error: "needs input: may I run go test?", questions: [{ text: "may I run go test?", tool: "Bash" }] }), NOW);
        assert.match(t, /needs input/);
        assert.match(t, /Fix add so it adds/);
        assert.match(t, /Question: may I run go test\?/);
        assert.match(t, /Error: needs input/);
    });

    test("status bar", () => {
        assert.equal(statusText({ running: 0, needsInput: 0 }), "$(robot) 0");
        assert.equal(statusText({ running: 2, needsInput: 0 }), "$(sync~spin) 2");
        assert.equal(statusText({ running: 2, needsInput: 1 }), "$(sync~spin) 2 $(bell-dot) 1");
        assert.equal(statusTooltip({ running: 1, needsInput: 2 }), "Background Agents: 1 running, 2 need input");
    });
});

suite("tree", () => {
    const a1 = agent({ id: "a1", name: "one", createdAt: "2026-11-21T16:00:00Z" });
    const a2 = agent({ id: "a2", name: "two", createdAt: "2026-11-21T16:05:00Z", state: "running" });
    const merged = agent({ id: "a3", name: "three", state: "merged" });
    const discarded = agent({ id: "a4", name: "four", state: "discarded" });
    const other = agent({ id: "b1", name: "elsewhere", repo: "/tmp/other" });

    test("one repository: shown agents, newest first; merged and discarded are hidden", () => {
        const groups = buildTree([a1, a2, merged, discarded, other], ["/tmp/bg/repo"]);
        assert.equal(groups.length, 1);
        assert.deepEqual(
            groups[0]!.agents.map((a) => a.name),
            ["two", "one"],
        );
    });

    test("several repositories are grouped in the order of the roots", () => {
        const groups = buildTree([a1, other], ["/tmp/other", "/tmp/bg/repo"]);
        assert.deepEqual(
            groups.map((g) => g.repo),
            ["/tmp/other", "/tmp/bg/repo"],
        );
    });

    test("no roots (no folder open): every repository", () => {
        assert.equal(buildTree([a1, other], []).length, 2);
    });

    test("counts only agents of the roots", () => {
        const waiting = agent({ id: "a5", state: "needs_input" });
        assert.deepEqual(count([a1, a2, waiting, agent({ id: "x", repo: "/tmp/other", state: "running" })], ["/tmp/bg/repo"]), { running: 1, needsInput: 1 });
    });
});

suite("snapshots", () => {
    test("newer snapshots replace older ones; older ones are ignored", () => {
        const m = new Map();
        const first = agent({ state: "running", updatedAt: "2026-11-21T16:00:02Z" });
        const second = agent({ state: "succeeded", updatedAt: "2026-11-21T16:00:05Z" });
        assert.deepEqual(applySnapshot(m, first), { applied: true, previous: undefined });
        assert.deepEqual(applySnapshot(m, second), { applied: true, previous: first });
        assert.deepEqual(applySnapshot(m, first), { applied: false, previous: second });
        assert.equal(m.get(first.id), second);
    });
});

suite("notifications", () => {
    const since = new Date("2026-11-21T15:00:00Z");
    const running = agent({ state: "running", finishedAt: null, exitCode: null });

    test("finished: diffstat and Show Diff, Open Worktree, Merge", () => {
        const n = noticeFor(running, agent(), since);
        assert.deepEqual(n, {
            severity: "info",
            message: "Agent fix-add finished (2 files +10 −3) on bgagents/fix-add: done",
            actions: ["Show Diff", "Open Worktree", "Merge"],
        });
    });

    test("failed and needs input", () => {
        const failed = noticeFor(running, agent({ state: "failed", error: "agent exited with code 1: boom" }), since);
        assert.equal(failed?.severity, "error");
        assert.equal(failed?.message, "Agent fix-add failed: agent exited with code 1: boom");
        assert.deepEqual(failed?.actions, ["Show Log", "Reply", "Open Worktree"]);
        const asks = noticeFor(running, agent({ state: "needs_input", error: "needs input: Bash?", questions: [{ text: "May I run go test?" }] }), since);
        assert.equal(asks?.severity, "warning");
        assert.equal(asks?.message, "Agent fix-add needs input: May I run go test?");
        assert.deepEqual(asks?.actions, ["Reply", "Show Log", "Open Worktree"]);
    });

    test("without changes: only the log", () => {
        assert.deepEqual(noticeFor(running, agent({ cleaned: true }), since)?.actions, ["Show Log"]);
    });

    test("no notification for the same state, live states, or agents that ended before the window started", () => {
        assert.equal(noticeFor(agent(), agent({ updatedAt: "2026-11-21T16:00:09Z" }), since), undefined);
        assert.equal(noticeFor(agent({ state: "queued" }), running, since), undefined);
        assert.equal(noticeFor(undefined, agent(), new Date("2026-11-21T17:00:00Z")), undefined);
        assert.ok(noticeFor(undefined, agent(), since) !== undefined);
    });
});
