import assert from "node:assert/strict";
import { suite, test } from "node:test";

import {
    conflictLabel,
    conflictNotices,
    mergeTargets,
    findingLabel,
    findingLocation,
    findingSeverity,
    findingTarget,
    followUpForReview,
    groupDescription,
    groupLabel,
    latestReview,
    notes,
    prNumber,
    pushedMessage,
    reviewDescription,
    reviewIcon,
    reviewLabel,
    reviewNotices,
} from "../../src/landing";
import type { Review } from "../../src/lsp_ext";
import { agent } from "./fixtures";

// A review entry as the daemon records it on the reviewed agent (docs/protocol.md §6.8).
function review(over: Partial<Review> = {}): Review {
    return {
        id: "5c0f5e2a91b7",
        name: "review-fix-add",
        agent: "asker",
        head: "4dd58264e13fcf2d98800e73a2b93768e332236d",
        state: "succeeded",
        createdAt: "2026-11-21T16:06:00Z",
        ...over,
    };
}

const findings = [
    { file: "calc.go", line: 5, severity: "medium", message: "add has no test" },
    { file: "NOTES.md", line: 1, severity: "low", message: "NOTES.md only repeats the task\nand nothing else" },
    { message: "the task is vague" },
];
const verdict = review({ verdict: "request_changes", summary: "add adds now, but nothing tests it", findings, finishedAt: "2026-11-21T16:07:00Z" });
const since = new Date("2026-11-21T15:00:00Z");

suite("reviews", () => {
    test("labels: verdict and reviewer; in progress; no verdict", () => {
        assert.equal(reviewLabel(verdict), "Review: changes requested by asker");
        assert.equal(reviewLabel(review({ verdict: "approve", model: "opus" })), "Review: approved by asker (opus)");
        assert.equal(reviewLabel(review({ state: "running" })), "Review: in progress by asker");
        assert.equal(reviewLabel(review({ state: "failed", error: "the reviewer failed: boom" })), "Review: no verdict by asker");
        assert.deepEqual(reviewIcon(verdict), { id: "request-changes", color: "list.warningForeground" });
        assert.equal(reviewIcon(review({ verdict: "approve" })).id, "pass");
        assert.equal(reviewIcon(review({ state: "running" })).id, "sync~spin");
    });

    test("description: findings and summary; the reviewer's state while it works; outdated once the branch moved", () => {
        const a = agent({ head: verdict.head });
        assert.equal(reviewDescription(verdict, a), "3 findings · add adds now, but nothing tests it");
        assert.equal(reviewDescription(review({ state: "queued" }), a), "queued");
        assert.equal(reviewDescription(review({ error: "the reviewer failed: boom" }), a), "the reviewer failed: boom");
        assert.equal(reviewDescription(verdict, agent({ head: "ffff" })), "of 4dd5826, outdated · 3 findings · add adds now, but nothing tests it");
    });

    test("the latest review, and the latest that ended", () => {
        const working = review({ id: "r2", state: "running" });
        assert.deepEqual(latestReview(agent({ reviews: [verdict, working] })), { latest: working, ended: verdict });
        assert.deepEqual(latestReview(agent()), { latest: undefined, ended: undefined });
    });

    test("findings: location, label, severity, and the file in the worktree while it exists, else in the main checkout", () => {
        assert.equal(findingLocation(findings[0]!), "calc.go:5");
        assert.equal(findingLocation(findings[2]!), "");
        assert.equal(findingLabel(findings[1]!), "NOTES.md only repeats the task");
        assert.deepEqual(findings.map(findingSeverity), ["warning", "info", "info"]);
        assert.equal(findingSeverity({ severity: "high", message: "x" }), "error");
        const a = agent();
        assert.deepEqual(findingTarget(findings[0]!, a, true), { path: "/tmp/bg/repo.worktrees/fix-add/calc.go", line: 4 });
        assert.deepEqual(findingTarget(findings[0]!, a, false), { path: "/tmp/bg/repo/calc.go", line: 4 });
        assert.deepEqual(findingTarget({ file: "README.md", message: "x" }, a, true), { path: "/tmp/bg/repo.worktrees/fix-add/README.md", line: 0 });
        assert.equal(findingTarget(findings[2]!, a, true), undefined);
    });

    test("the end of a review is announced once, with its verdict and Show Findings", () => {
        const working = agent({ reviews: [review({ state: "running" })], updatedAt: "2026-11-21T16:06:30Z" });
        const done = agent({ reviews: [verdict], updatedAt: "2026-11-21T16:07:00Z" });
        const [n, ...more] = reviewNotices(working, done, since);
        assert.deepEqual(more, []);
        assert.equal(n?.severity, "warning");
        assert.equal(n?.message, "Review of fix-add by review-fix-add (asker): changes requested, 3 findings — add adds now, but nothing tests it");
        assert.deepEqual(n?.actions, ["Show Findings", "Reply"]);
        assert.deepEqual(reviewNotices(done, { ...done, updatedAt: "2026-11-21T16:08:00Z" }, since), [], "not again for a later record");
        const approve = reviewNotices(working, agent({ reviews: [review({ verdict: "approve" })] }), since)[0];
        assert.equal(approve?.severity, "info");
        assert.deepEqual(approve?.actions, ["Merge"]);
        const failed = reviewNotices(working, agent({ reviews: [review({ state: "failed", error: "the reviewer failed: boom" })] }), since)[0];
        assert.equal(failed?.message, "The review of fix-add by review-fix-add (asker) gave no verdict: the reviewer failed: boom");
    });

    test("a record seen first (a reconnect) announces reviews that ended after the window started, not before", () => {
        const done = agent({ reviews: [verdict] });
        assert.equal(reviewNotices(undefined, done, since).length, 1);
        assert.equal(reviewNotices(undefined, done, new Date("2026-11-21T17:00:00Z")).length, 0);
    });

    test("Reply drafts a follow-up with the findings", () => {
        assert.equal(
            followUpForReview(verdict),
            "Address the review by asker (changes requested): add adds now, but nothing tests it. Findings: calc.go:5: [medium] add has no test; NOTES.md:1: [low] NOTES.md only repeats the task and nothing else; the task is vague",
        );
        assert.ok(!followUpForReview(verdict).includes("\n"), "an input box has one line");
        assert.equal(followUpForReview({ ...verdict, summary: "", findings: [] }), "Address the review by asker (changes requested).");
    });

    test("a new conflict is announced once per pair, naming the other agent or the base; Integrate… when both can be integrated", () => {
        const announced = new Set<string>();
        const left = agent({ id: "l", name: "left" });
        const right = agent({ id: "r", name: "right" });
        const get = (id: string) => (id === "l" ? left : id === "r" ? right : undefined);
        const withRight = agent({ id: "l", name: "left", conflicts: [{ agent: "r", files: ["NOTES.md"] }] });
        const n = conflictNotices(left, withRight, get, announced);
        assert.deepEqual(n, [{ kind: "conflict", severity: "warning", message: "Agent left conflicts with right in NOTES.md — merging both needs a resolution.", actions: ["Show", "Integrate…"], index: 0 }]);
        // The other side of the same pair is not announced again, nor the same snapshot twice.
        assert.deepEqual(conflictNotices(right, agent({ id: "r", name: "right", conflicts: [{ agent: "l", files: ["NOTES.md"] }] }), get, announced), []);
        assert.deepEqual(conflictNotices(withRight, withRight, get, announced), []);
        const base = conflictNotices(withRight, agent({ id: "l", name: "left", conflicts: [{ agent: "r", files: ["NOTES.md"] }, { base: "main", files: ["a.go"] }] }), get, announced);
        assert.deepEqual(base.map((x) => [x.message, x.actions, x.index]), [["Agent left conflicts with main in a.go (main moved on since it started).", ["Show"], 1]]);
        // A record seen first (a list at connect) announces nothing.
        assert.deepEqual(conflictNotices(undefined, agent({ id: "x", conflicts: [{ agent: "y", files: ["f"] }] }), get, new Set()), []);
    });
});

suite("conflicts, groups, pushes", () => {
    test("conflict labels name the other agent or the base", () => {
        assert.equal(conflictLabel({ agent: "x", name: "right", files: ["NOTES.md", "calc.go"] }), "Conflicts with right: NOTES.md, calc.go");
        assert.equal(conflictLabel({ base: "main", files: ["NOTES.md"] }), "Conflicts with base main: NOTES.md");
        assert.equal(conflictLabel({ agent: "x1", files: ["a"] }, (id) => (id === "x1" ? "left" : undefined)), "Conflicts with left: a");
    });

    test("notes: a queued step waits; an integration names its agents; a push without a pull request", () => {
        const nameOf = (id: string) => ({ a: "alpha", b: "beta" })[id];
        assert.deepEqual(notes(agent({ state: "queued", after: "a" }), nameOf), ["waiting for alpha"]);
        assert.deepEqual(notes(agent({ after: "zz" }), nameOf), ["after zz"]);
        assert.deepEqual(notes(agent({ integrates: ["a", "b"] }), nameOf), ["integrates alpha, beta"]);
        assert.deepEqual(notes(agent({ pushed: { remote: "origin", branch: "bgagents/fix-add", commit: "abc", at: "" } }), nameOf), ["pushed to origin"]);
        assert.deepEqual(notes(agent({ reviews: [review({ state: "running" })] }), nameOf), ["reviewing…"]);
        assert.deepEqual(notes(agent(), nameOf), []);
        const many = agent({ conflicts: [{ agent: "a", files: ["x"] }, { agent: "b", files: ["x"] }, { base: "main", files: ["x"] }] });
        assert.deepEqual(notes(many, nameOf), ["⚠ conflicts with base main and 2 more"], "the base first; the children list every one");
    });

    test("group label and description", () => {
        const v1 = agent({ task: "Try two ways\nmore", group: "g", variant: 1 });
        const v2 = agent({ task: "Try two ways\nmore", group: "g", variant: 2, state: "running" });
        assert.equal(groupLabel([v1, v2]), "Try two ways — 2 variants");
        assert.equal(groupDescription([v1, v2, { ...v1, state: "needs_input" }]), "1 succeeded, 1 running, 1 needs input");
    });

    test("push and pull request texts", () => {
        assert.equal(prNumber("https://github.com/acme/app/pull/7"), "#7");
        assert.equal(prNumber("https://example.com/x"), "");
        assert.equal(pushedMessage(agent({ pushed: { remote: "origin", branch: "bgagents/fix-add", commit: "0123456789ab", at: "" } })), "Pushed bgagents/fix-add to origin (0123456).");
    });
});

suite("merge target", () => {
    test("the base when it is a local branch, else the main checkout's branch; a pipeline step may land in the main checkout's branch instead", () => {
        assert.deepEqual(mergeTargets(agent({ base: "main" }), true, "main"), { target: "main" });
        assert.deepEqual(mergeTargets(agent({ base: "v1.2" }), false, "dev"), { target: "dev" });
        assert.deepEqual(mergeTargets(agent({ base: "v1.2" }), false, undefined), { target: undefined });
        const step = agent({ base: "bgagents/first", after: "dep1" });
        assert.deepEqual(mergeTargets(step, true, "main"), { target: "bgagents/first", alternative: "main" });
        // The predecessor was merged: its branch is gone, the step lands in the main checkout's branch.
        assert.deepEqual(mergeTargets(step, false, "main"), { target: "main" });
    });
});
