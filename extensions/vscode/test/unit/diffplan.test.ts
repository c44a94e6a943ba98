import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { agentSide, decodeGitQuery, encodeGitQuery, isSafeRef, planDiff } from "../../src/diffplan";
import type { DiffResult } from "../../src/lsp_ext";

const result: DiffResult = {
    id: "6fe56ba08ed4",
    repo: "/tmp/bg/repo",
    worktree: "/tmp/bg/repo.worktrees/fix-add",
    branch: "bgagents/fix-add",
    baseCommit: "de2c4da259f96b5a071554daa565e18085517ee6",
    head: "4dd58264e13fcf2d98800e73a2b93768e332236d",
    diff: "",
    stat: { commits: 1, files: 4, additions: 3, deletions: 2 },
    files: [
        { path: "calc.go", status: "M", additions: 1, deletions: 1 },
        { path: "NOTES.md", status: "A", additions: 1, deletions: 0 },
        { path: "old.txt", status: "D", additions: 0, deletions: 1 },
        { path: "pkg/new.go", oldPath: "pkg/old.go", status: "R", additions: 1, deletions: 0 },
    ],
};

suite("planDiff", () => {
    test("while the worktree exists, the agent's side is the file on disk", () => {
        const [m, a, d, r] = planDiff(result, true);
        assert.deepEqual(m!.left, { kind: "git", repo: "/tmp/bg/repo", ref: result.baseCommit, path: "calc.go", at: "/tmp/bg/repo.worktrees/fix-add/calc.go" });
        assert.deepEqual(m!.right, { kind: "file", path: "/tmp/bg/repo.worktrees/fix-add/calc.go" });
        assert.equal(m!.title, "calc.go (de2c4da ↔ bgagents/fix-add)");
        assert.deepEqual(a!.left, { kind: "git", repo: "/tmp/bg/repo", ref: "", path: "NOTES.md", at: "/tmp/bg/repo.worktrees/fix-add/NOTES.md" }, "added: empty base");
        assert.deepEqual(d!.right, { kind: "git", repo: "/tmp/bg/repo", ref: "", path: "old.txt", at: "/tmp/bg/repo.worktrees/fix-add/old.txt" }, "deleted: empty agent side");
        assert.equal((r!.left as { path: string }).path, "pkg/old.go", "renamed: base side under the old name");
        assert.equal(r!.title, "new.go (de2c4da ↔ bgagents/fix-add)");
    });

    test("after merge or discard, the agent's side is the recorded head", () => {
        const [m] = planDiff(result, false);
        assert.deepEqual(m!.right, { kind: "git", repo: "/tmp/bg/repo", ref: result.head, path: "calc.go", at: "/tmp/bg/repo.worktrees/fix-add/calc.go" });
    });

    test("uncommitted changes: the agent's side is the file on disk, deleted files are empty, and the title says so", () => {
        const live: DiffResult = { ...result, uncommitted: true };
        // Even when the extension could not see the worktree itself (planned as absent): head lacks the uncommitted content.
        const [m, a, d] = planDiff(live, false);
        assert.deepEqual(m!.right, { kind: "file", path: "/tmp/bg/repo.worktrees/fix-add/calc.go" });
        assert.deepEqual(a!.right, { kind: "file", path: "/tmp/bg/repo.worktrees/fix-add/NOTES.md" });
        assert.deepEqual(d!.right, { kind: "git", repo: "/tmp/bg/repo", ref: "", path: "old.txt", at: "/tmp/bg/repo.worktrees/fix-add/old.txt" });
        assert.equal(m!.title, "calc.go (de2c4da ↔ bgagents/fix-add, uncommitted)");
        assert.equal(agentSide(live), "bgagents/fix-add, uncommitted");
        assert.equal(agentSide(result), "bgagents/fix-add");
    });

    test("no files", () => {
        assert.deepEqual(planDiff({ ...result, files: null }, true), []);
    });
});

suite("git URIs", () => {
    test("query round trip", () => {
        const q = { repo: "/tmp/a b/repo", ref: "abc", path: "dir/x.go" };
        assert.deepEqual(decodeGitQuery(encodeGitQuery(q)), q);
        assert.equal(decodeGitQuery("nonsense"), undefined);
        assert.equal(decodeGitQuery('{"repo":1,"ref":"x","path":"a"}'), undefined);
        assert.equal(decodeGitQuery('{"repo":"/r","ref":"x"}'), undefined);
    });

    test("refs that look like options are refused", () => {
        assert.ok(isSafeRef("de2c4da"));
        assert.ok(!isSafeRef("--output=/tmp/x"));
        assert.ok(!isSafeRef(""));
        assert.ok(!isSafeRef("a b"));
    });
});
