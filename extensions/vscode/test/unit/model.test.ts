import assert from "node:assert/strict";
import { describe as suite, test } from "node:test";

import { allStates } from "../../src/lsp_ext";
import {
    abilities,
    applySnapshot,
    buildTree,
    cancelledMessage,
    cancelPrompt,
    compareTimes,
    contextValue,
    count,
    describe,
    EMPTY_SCOPE,
    formatAge,
    formatCost,
    formatDiffStat,
    formatTokens,
    inScope,
    integrable,
    isLive,
    noticeFor,
    parseTime,
    reconcile,
    stateIcon,
    stateLabel,
    statusText,
    statusTooltip,
    tooltip,
    announcedIn,
    hasStarted,
    refusedTools,
    treeChange,
} from "../../src/model";
import type { Agent } from "../../src/lsp_ext";
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
    const none = { review: false, push: false, integrate: false, follow: false, findings: false };

    test("a succeeded agent can be opened, diffed, continued, merged, discarded, reviewed, pushed, integrated and followed, not cancelled", () => {
        assert.deepEqual(abilities(agent()), { open: true, diff: true, followUp: true, cancel: false, merge: true, discard: true, review: true, push: true, integrate: true, follow: true, findings: false });
        assert.equal(contextValue(agent()), "agent state-succeeded open diff followup merge discard review push follow");
    });

    test("a running agent can be opened, diffed, cancelled, (with force) discarded and followed by a pipeline step", () => {
        assert.deepEqual(abilities(agent({ state: "running" })), { open: true, diff: true, followUp: false, cancel: true, merge: false, discard: true, ...none, follow: true });
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

    test("a cleaned-up agent can only be discarded (and followed: a step starts where it ended)", () => {
        assert.deepEqual(abilities(agent({ cleaned: true })), { open: false, diff: false, followUp: false, cancel: false, merge: false, discard: true, ...none, follow: true });
    });

    test("merged and discarded agents can only be diffed (against their recorded head)", () => {
        for (const state of ["merged", "discarded"] as const) {
            assert.deepEqual(abilities(agent({ state })), { open: false, diff: true, followUp: false, cancel: false, merge: false, discard: false, ...none }, state);
        }
    });

    test("review needs commits; reviewers and read-only agents are neither reviewed, pushed nor integrated", () => {
        assert.equal(abilities(agent({ diff: { commits: 0, files: 0, additions: 0, deletions: 0 } })).review, false);
        const reviewer = agent({ reviewOf: "6fe56ba08ed4", readOnly: true });
        const a = abilities(reviewer);
        assert.ok(!a.review && !a.push && !a.integrate && !a.follow);
        assert.doesNotMatch(contextValue(reviewer), /\b(review|push|follow)\b/);
        // A failed or cancelled agent's branch can still be reviewed and pushed; a pipeline step cannot follow it.
        for (const state of ["failed", "cancelled", "needs_input"] as const) {
            const x = abilities(agent({ state }));
            assert.ok(x.review && x.push && x.integrate, state);
        }
        assert.equal(abilities(agent({ state: "failed" })).follow, false);
    });

    test("findings: the latest review that ended has some", () => {
        const r = { id: "r1", name: "review-fix-add", agent: "codex", head: "abc", state: "succeeded" as const, createdAt: "2026-11-21T16:01:00Z" };
        assert.equal(abilities(agent({ reviews: [{ ...r, verdict: "approve" }] })).findings, false);
        const withFindings = agent({ reviews: [{ ...r, verdict: "request_changes", findings: [{ message: "no test" }] }] });
        assert.equal(abilities(withFindings).findings, true);
        assert.match(contextValue(withFindings), /\bfindings\b/);
        // A newer review still at work: the findings of the one that ended are shown.
        assert.equal(abilities(agent({ reviews: [...withFindings.reviews!, { ...r, id: "r2", state: "running" }] })).findings, true);
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

    test("the description adds the landing notes: variant's agent, pipeline step, review, conflicts, pull request", () => {
        const names: Record<string, string> = { d1: "dep", o1: "other" };
        const nameOf = (id: string) => names[id];
        assert.equal(describe(agent({ state: "queued", after: "d1", diff: { commits: 0, files: 0, additions: 0, deletions: 0 } }), NOW, nameOf), "bgagents/fix-add · 10m · waiting for dep");
        assert.equal(describe(agent({ after: "d1" }), NOW, nameOf), "bgagents/fix-add · 10m · 2 files +10 −3 · after dep");
        assert.equal(describe(agent({ group: "g", variant: 2, agent: "codex" }), NOW, nameOf), "codex · bgagents/fix-add · 10m · 2 files +10 −3");
        const busy = agent({
            conflicts: [{ agent: "o1", files: ["NOTES.md"] }, { base: "main", files: ["calc.go"] }],
            reviews: [{ id: "r", name: "review-fix-add", agent: "asker", head: "h", state: "succeeded", verdict: "request_changes", createdAt: "2026-11-21T16:01:00Z" }],
            pullRequest: "https://github.com/acme/app/pull/7",
            pushed: { remote: "origin", branch: "bgagents/fix-add", commit: "0123456789", at: "2026-11-21T16:02:00Z" },
        });
        assert.equal(describe(busy, NOW, nameOf), "bgagents/fix-add · 10m · 2 files +10 −3 · ✗ changes requested · ⚠ conflicts with base main, other · PR #7");
        const t = tooltip(busy, NOW, nameOf);
        assert.match(t, /⚠ Conflicts with other: NOTES\\\.md/);
        assert.match(t, /Pushed to `origin\/bgagents\/fix-add` at `0123456`/);
        assert.match(t, /Pull request: https:\/\/github\.com\/acme\/app\/pull\/7/);
        assert.match(tooltip(agent({ state: "queued", after: "d1" }), NOW, nameOf), /After dep: waits until it has succeeded/);
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
    const repoScope = { roots: ["/tmp/bg/repo"], folders: ["/tmp/bg/repo"] };

    test("one repository: shown agents, newest first; merged and discarded are hidden", () => {
        const groups = buildTree([a1, a2, merged, discarded, other], repoScope);
        assert.equal(groups.length, 1);
        assert.deepEqual(
            groups[0]!.agents.map((a) => a.name),
            ["two", "one"],
        );
    });

    test("newest first compares times, not strings (fractions of different length)", () => {
        // As text "…:00Z" sorts after "…:00.5Z"; as times it is earlier.
        const older = agent({ id: "o", name: "older", createdAt: "2026-11-21T16:00:00Z" });
        const newer = agent({ id: "n", name: "newer", createdAt: "2026-11-21T16:00:00.5Z" });
        assert.deepEqual(
            buildTree([older, newer], repoScope)[0]!.agents.map((a) => a.name),
            ["newer", "older"],
        );
    });

    test("several repositories are grouped in the order of the roots", () => {
        const groups = buildTree([a1, other], { roots: ["/tmp/other", "/tmp/bg/repo"], folders: [] });
        assert.deepEqual(
            groups.map((g) => g.repo),
            ["/tmp/other", "/tmp/bg/repo"],
        );
    });

    test("a window without a repository shows and counts nothing", () => {
        assert.deepEqual(buildTree([a1, a2, other], EMPTY_SCOPE), []);
        assert.deepEqual(count([a2, agent({ id: "x", repo: "/tmp/other", state: "running" })], EMPTY_SCOPE), { running: 0, needsInput: 0 });
        // A folder that is no repository and contains none of the agents' repositories.
        assert.deepEqual(buildTree([a1, other], { roots: [], folders: ["/home/me/notes"] }), []);
    });

    test("scope: a workspace folder inside a repository, or a repository inside a workspace folder", () => {
        // Folder /tmp/bg/repo/src is inside the repository: its main checkout is a root.
        assert.ok(inScope("/tmp/bg/repo", { roots: ["/tmp/bg/repo"], folders: ["/tmp/bg/repo/src"] }));
        // Folder /tmp/bg contains the repository /tmp/bg/repo (found or not by the scan).
        assert.ok(inScope("/tmp/bg/repo", { roots: [], folders: ["/tmp/bg"] }));
        assert.ok(!inScope("/tmp/bgx/repo", { roots: [], folders: ["/tmp/bg"] }), "a sibling with a common prefix is outside");
        assert.ok(!inScope("/tmp/other", { roots: ["/tmp/bg/repo"], folders: ["/tmp/bg/repo"] }));
        assert.equal(buildTree([a1, other], { roots: [], folders: ["/tmp"] }).length, 2);
    });

    test("variants of a fan-out are one entry, by variant, where the newest would be; a lone variant is an agent", () => {
        const v = (n: number, over: Partial<Agent> = {}) =>
            agent({ id: `v${n}`, name: `try-v${n}`, task: "Try two ways\nwith details", group: "g1", variant: n, createdAt: "2026-11-21T16:03:00Z", ...over });
        const newest = agent({ id: "n", name: "newest", createdAt: "2026-11-21T16:09:00Z" });
        const [g] = buildTree([a1, v(2), v(1), newest, a2], repoScope);
        assert.deepEqual(
            g!.entries.map((e) => (e.kind === "agent" ? e.agent.name : `${e.label} [${e.agents.map((a) => a.name).join(" ")}]`)),
            ["newest", "two", "Try two ways — 2 variants [try-v1 try-v2]", "one"],
        );
        assert.deepEqual(
            g!.agents.map((a) => a.name),
            ["newest", "two", "try-v1", "try-v2", "one"],
            "agents: every shown agent (pickers), newest first",
        );
        // One variant was discarded: the other is shown as an agent.
        const [h] = buildTree([v(1), v(2, { state: "discarded" })], repoScope);
        assert.deepEqual(h!.entries, [{ kind: "agent", agent: v(1) }]);
    });

    test("integrable: every variant ended and two or more have work", () => {
        const v1 = agent({ id: "v1", group: "g", variant: 1 });
        const v2 = agent({ id: "v2", group: "g", variant: 2 });
        assert.deepEqual(integrable([v1, v2])?.map((a) => a.id), ["v1", "v2"]);
        assert.equal(integrable([v1, { ...v2, state: "running" }]), undefined, "one still works");
        assert.equal(integrable([v1, { ...v2, cleaned: true }]), undefined, "one changed nothing");
        assert.deepEqual(integrable([v1, v2, agent({ id: "v3", cleaned: true })])?.map((a) => a.id), ["v1", "v2"]);
        assert.equal(integrable([v1, { ...v2, diff: { commits: 0, files: 0, additions: 0, deletions: 0 } }]), undefined, "one has no commit");
    });

    test("reviewers show under the agent they review, not as agents; one whose agent is gone only while it works", () => {
        const reviewer = agent({ id: "r", name: "review-one", reviewOf: "a1", readOnly: true, createdAt: "2026-11-21T16:08:00Z" });
        assert.deepEqual(
            buildTree([a1, reviewer], repoScope)[0]!.agents.map((a) => a.name),
            ["one"],
        );
        assert.deepEqual(
            buildTree([merged, { ...reviewer, reviewOf: "a3", state: "running" }], repoScope)[0]!.agents.map((a) => a.name),
            ["review-one"],
        );
        assert.deepEqual(buildTree([merged, { ...reviewer, reviewOf: "a3" }], repoScope), []);
    });

    test("counts only agents of the scope", () => {
        const waiting = agent({ id: "a5", state: "needs_input" });
        assert.deepEqual(count([a1, a2, waiting, agent({ id: "x", repo: "/tmp/other", state: "running" })], repoScope), { running: 1, needsInput: 1 });
    });
});

suite("times", () => {
    test("RFC3339Nano timestamps are ordered as times, to the nanosecond", () => {
        assert.ok(compareTimes("2026-11-21T16:00:07Z", "2026-11-21T16:00:07.5Z") < 0);
        assert.ok(compareTimes("2026-11-21T16:00:07.14946746Z", "2026-11-21T16:00:07.149467461Z") < 0);
        assert.ok(compareTimes("2026-11-21T16:00:07.9Z", "2026-11-21T16:00:07.10Z") > 0);
        assert.equal(compareTimes("2026-11-21T16:00:07.5Z", "2026-11-21T16:00:07.500000000Z"), 0);
        assert.ok(compareTimes("2026-11-21T17:00:00+01:00", "2026-11-21T16:00:00.1Z") < 0, "offsets are honoured");
        assert.deepEqual(parseTime("2026-11-21T16:00:07.000000123Z"), [Date.parse("2026-11-21T16:00:07Z"), 123]);
        assert.equal(parseTime("yesterday"), undefined);
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

    test("updatedAt is compared as a time: a whole second is older than a fraction of it", () => {
        const m = new Map();
        // RFC3339Nano drops trailing zeros; as strings "…:05Z" > "…:05.25Z".
        const older = agent({ state: "running", updatedAt: "2026-11-21T16:00:05Z" });
        const newer = agent({ state: "succeeded", updatedAt: "2026-11-21T16:00:05.25Z" });
        applySnapshot(m, newer);
        assert.deepEqual(applySnapshot(m, older), { applied: false, previous: newer });
        assert.equal(m.get(newer.id)?.state, "succeeded");
        const m2 = new Map();
        applySnapshot(m2, older);
        assert.equal(applySnapshot(m2, newer).applied, true);
    });

    test("reconcile after a reconnect: what changed meanwhile is reported once, with the snapshot held before", () => {
        const since = new Date("2026-11-21T15:00:00Z");
        const known = new Map();
        const running = agent({ id: "r", name: "runs", state: "running", finishedAt: null, updatedAt: "2026-11-21T16:00:02Z" });
        const waiting = agent({ id: "w", name: "asks", state: "running", finishedAt: null, updatedAt: "2026-11-21T16:00:02Z" });
        const steady = agent({ id: "s", name: "steady", state: "succeeded", updatedAt: "2026-11-21T16:00:01Z" });
        reconcile(known, [running, waiting, steady]);
        const ended = { ...running, state: "succeeded" as const, finishedAt: "2026-11-21T16:00:09Z", updatedAt: "2026-11-21T16:00:09Z" };
        const asks = { ...waiting, state: "needs_input" as const, error: "needs input: which db?", questions: [{ text: "which db?" }], updatedAt: "2026-11-21T16:00:09Z" };
        const fresh = [ended, asks, steady];
        const notices = (changes: ReturnType<typeof reconcile>) =>
            changes.map((c) => noticeFor(c.previous, c.agent, since)?.message).filter((m) => m !== undefined);
        assert.deepEqual(notices(reconcile(known, fresh)), ["Agent runs finished (2 files +10 −3) on bgagents/runs: done", "Agent asks needs input: which db?"]);
        assert.deepEqual(notices(reconcile(known, fresh)), [], "a second list with the same states announces nothing");
        // A held snapshot newer than the list (a notification overtook the reply) is kept.
        const stale = { ...ended, state: "running" as const, updatedAt: "2026-11-21T16:00:03Z" };
        assert.deepEqual(reconcile(known, [stale]), []);
        assert.equal(known.get("r")?.state, "succeeded");
    });

    test("reconcile drops what the daemon no longer lists, unless a notification brought it after the list was asked for", () => {
        const known = new Map();
        const gone = agent({ id: "g", name: "gone" });
        const kept = agent({ id: "k", name: "kept" });
        reconcile(known, [gone, kept]);
        const before = new Map(known);
        // While the list is on its way, a notification brings a new agent.
        const fresh = agent({ id: "n", name: "new", state: "queued" });
        applySnapshot(known, fresh);
        reconcile(known, [kept], before);
        assert.deepEqual([...known.keys()].sort(), ["k", "n"]);
    });
});

suite("cancel", () => {
    test("a queued agent has not started: it will not start", () => {
        const ask = cancelPrompt(agent({ state: "queued" }));
        assert.match(ask.detail, /has not started: it will not start/);
        assert.doesNotMatch(ask.detail, /committed|so far/);
        assert.equal(cancelledMessage(agent({ state: "queued" }), agent({ state: "cancelled" })), "Agent fix-add was cancelled before it started; it will not start.");
        assert.match(cancelPrompt(agent({ state: "provisioning" })).detail, /will not start/);
        assert.equal(cancelledMessage(agent({ state: "provisioning" }), agent({ state: "cancelled" })), "Agent fix-add was cancelled before it started; it will not start.");
    });

    test("a running agent is stopped and keeps its work on its branch", () => {
        const ask = cancelPrompt(agent({ state: "running" }));
        assert.equal(ask.message, "Stop agent fix-add?");
        assert.match(ask.detail, /committed to bgagents\/fix-add/);
        assert.equal(cancelledMessage(agent({ state: "running" }), agent({ state: "cancelled" })), "Agent fix-add was cancelled. Its work so far is on bgagents/fix-add.");
        assert.equal(cancelledMessage(agent({ state: "running" }), agent({ state: "succeeded" })), "Agent fix-add had already ended: it is succeeded.");
    });

    test("an agent waiting for input keeps its worktree", () => {
        assert.match(cancelPrompt(agent({ state: "needs_input" })).detail, /will not run again; its worktree and bgagents\/fix-add stay/);
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

    test("a reviewer's end is not announced by itself (its verdict is, on the agent it reviews)", () => {
        assert.equal(noticeFor(running, agent({ reviewOf: "x", readOnly: true, cleaned: true }), since), undefined);
    });

    test("no notification for the same state, live states, or agents that ended before the window started", () => {
        assert.equal(noticeFor(agent(), agent({ updatedAt: "2026-11-21T16:00:09Z" }), since), undefined);
        assert.equal(noticeFor(agent({ state: "queued" }), running, since), undefined);
        assert.equal(noticeFor(undefined, agent(), new Date("2026-11-21T17:00:00Z")), undefined);
        assert.ok(noticeFor(undefined, agent(), since) !== undefined);
    });
});

suite("agents that never started", () => {
    test("failed in preparation, cancelled while queued, or a step failed by its predecessor: only Show Log and Discard", () => {
        for (const a of [
            agent({ state: "failed", startedAt: null, error: "setup failed", diff: { commits: 0, files: 0, additions: 0, deletions: 0 } }),
            agent({ state: "cancelled", startedAt: null, diff: { commits: 0, files: 0, additions: 0, deletions: 0 } }),
            agent({ state: "failed", startedAt: null, after: "dep1", error: "dependency failed" }),
        ]) {
            assert.ok(!hasStarted(a));
            assert.equal(contextValue(a), `agent state-${a.state} discard`);
            const ab = abilities(a);
            assert.ok(!ab.open && !ab.diff && !ab.followUp && !ab.merge && !ab.push && !ab.integrate && !ab.review && !ab.follow);
        }
        const n = noticeFor(agent({ state: "provisioning", startedAt: null }), agent({ state: "failed", startedAt: null, error: "setup: exit 1" }), new Date(0));
        assert.deepEqual(n, { severity: "error", message: "Agent fix-add failed before it started: setup: exit 1", actions: ["Show Log", "Discard"] });
        assert.ok(hasStarted(agent({ startedAt: null, head: "abc" })), "a recorded head counts");
    });
});

suite("status bar and announcements", () => {
    test("running counts running agents only: not queued or provisioning ones, nor reviewers", () => {
        const scope = { roots: ["/tmp/bg/repo"], folders: [] };
        const c = count(
            [
                agent({ id: "1", state: "running" }),
                agent({ id: "2", state: "queued" }),
                agent({ id: "3", state: "provisioning" }),
                agent({ id: "4", state: "running", reviewOf: "1" }),
                agent({ id: "5", state: "needs_input" }),
            ],
            scope,
        );
        assert.deepEqual(c, { running: 1, needsInput: 1 });
    });

    test("a window on an agent's worktree announces only that agent", () => {
        assert.ok(announcedIn(agent(), []));
        assert.ok(announcedIn(agent({ name: "fix-add" }), ["/tmp/bg/repo.worktrees/fix-add"]));
        assert.ok(!announcedIn(agent({ name: "other" }), ["/tmp/bg/repo.worktrees/fix-add"]));
    });

    test("questions asked through AskUserQuestion or request_user_input are no refused tools", () => {
        const a = agent({
            state: "needs_input",
            questions: [{ text: "Which one?", tool: "AskUserQuestion" }, { text: "Write?", tool: "Write" }, { text: "Sure?", tool: "request_user_input" }, { text: "Write again?", tool: "Write" }],
        });
        assert.deepEqual(refusedTools(a), ["Write"]);
    });
});

suite("tree updates", () => {
    test("a usage-only snapshot changes nothing shown; a new diff redraws the agent; a state change redraws the rows around it", () => {
        const running = agent({ state: "running", finishedAt: null });
        const tokens = { ...running, usage: { ...running.usage, inputTokens: 500 }, updatedAt: "2026-11-21T16:00:06Z" };
        assert.equal(treeChange(running, tokens, NOW), "none");
        assert.equal(treeChange(running, { ...running, usage: { ...running.usage, costUsd: 0.5 } }, NOW), "agent");
        assert.equal(treeChange(running, { ...running, diff: { commits: 2, files: 3, additions: 1, deletions: 0 } }, NOW), "agent");
        assert.equal(treeChange(running, { ...running, state: "succeeded" }, NOW), "all");
        assert.equal(treeChange(undefined, running, NOW), "all");
        const reviewer = agent({ state: "running", reviewOf: "x" });
        assert.equal(treeChange(reviewer, { ...reviewer, usage: { ...reviewer.usage, costUsd: 1 } }, NOW), "none");
        assert.equal(treeChange(reviewer, { ...reviewer, state: "succeeded" }, NOW), "all");
    });
});
