// Agent records shaped like the daemon's (docs/protocol.md §6.1).

import type { Agent } from "../../src/lsp_ext";

export function agent(over: Partial<Agent> = {}): Agent {
    const name = over.name ?? "fix-add";
    return {
        id: "6fe56ba08ed4",
        name,
        task: "Fix add so it adds",
        agent: "script",
        provider: "command",
        model: "",
        repo: "/tmp/bg/repo",
        worktree: `/tmp/bg/repo.worktrees/${name}`,
        branch: `bgagents/${name}`,
        base: "main",
        baseCommit: "de2c4da259f96b5a071554daa565e18085517ee6",
        state: "succeeded",
        exitCode: 0,
        error: "",
        createdAt: "2026-11-21T16:00:00Z",
        startedAt: "2026-11-21T16:00:01Z",
        finishedAt: "2026-11-21T16:00:05Z",
        result: "done",
        usage: { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0 },
        diff: { commits: 1, files: 2, additions: 10, deletions: 3 },
        updatedAt: "2026-11-21T16:00:05Z",
        ...over,
    };
}
