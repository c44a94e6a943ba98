// "Show Diff": every file an agent changed, in a diff editor against the
// commit it started from. The base side is served by a content provider
// (`git cat-file` at the base commit); the agent's side is the file in its
// worktree while that exists — for a running agent the daemon's diff then
// includes what is not committed yet (DiffResult.uncommitted) — else the
// branch's recorded head.

import * as fs from "node:fs";
import * as vscode from "vscode";
import type * as lc from "vscode-languageclient/node";

import { agentSide, decodeGitQuery, encodeGitQuery, GIT_SCHEME, isSafeRef, planDiff, planFile, type FileDiff, type Side } from "./diffplan";
import { git, type GitLog } from "./git";
import * as ext from "./lsp_ext";
import { abilities } from "./model";

export class GitContentProvider implements vscode.TextDocumentContentProvider {
    constructor(private readonly log: GitLog) {}

    async provideTextDocumentContent(uri: vscode.Uri): Promise<string> {
        const q = decodeGitQuery(uri.query);
        if (q === undefined || q.ref === "") return "";
        if (!isSafeRef(q.ref)) throw new Error(`not a git revision: ${q.ref}`);
        return git(this.log, q.repo, ["cat-file", "-p", `${q.ref}:${q.path}`]);
    }
}

export function sideUri(side: Side): vscode.Uri {
    if (side.kind === "file") return vscode.Uri.file(side.path);
    return vscode.Uri.from({ scheme: GIT_SCHEME, path: side.at, query: encodeGitQuery({ repo: side.repo, ref: side.ref, path: side.path }) });
}

export class Diffs {
    constructor(private readonly client: () => lc.LanguageClient | undefined) {}

    private async fetch(agent: ext.Agent): Promise<{ result: ext.DiffResult; worktreeExists: boolean }> {
        const client = this.client();
        if (client === undefined) throw new Error("not connected to the bgagents daemon");
        const result = await client.sendRequest(ext.diff, { id: agent.id, stat: true });
        const worktreeExists = abilities(agent).open && fs.existsSync(result.worktree);
        return { result, worktreeExists };
    }

    /** The agent's changed files (for the tree). */
    async files(agent: ext.Agent): Promise<ext.FileChange[]> {
        return (await this.fetch(agent)).result.files ?? [];
    }

    /** Opens every changed file: one diff editor for one file, a multi-file diff editor for several. */
    async show(agent: ext.Agent): Promise<void> {
        const { result, worktreeExists } = await this.fetch(agent);
        const plan = planDiff(result, worktreeExists);
        if (plan.length === 0) {
            void vscode.window.showInformationMessage(`Agent ${agent.name} has no changes against ${agent.base}.`);
            return;
        }
        if (plan.length === 1) {
            await openOne(plan[0]!);
            return;
        }
        await vscode.commands.executeCommand(
            "vscode.changes",
            // VS Code adds "(N files)".
            `${agent.name}: +${result.stat.additions} −${result.stat.deletions} (${agentSide(result)})`,
            plan.map((p) => [sideUri(p.right), sideUri(p.left), sideUri(p.right)]),
        );
    }

    /** Opens one changed file of an agent. */
    async showFile(agent: ext.Agent, file: ext.FileChange): Promise<void> {
        const { result, worktreeExists } = await this.fetch(agent);
        await openOne(planFile(result, file, worktreeExists));
    }
}

async function openOne(p: FileDiff): Promise<void> {
    await vscode.commands.executeCommand("vscode.diff", sideUri(p.left), sideUri(p.right), p.title, { preview: false });
}
