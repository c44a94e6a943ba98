// One factory per command: `(ctx) => (...args) => result`. Agent commands
// take the agent from a tree node, an agent record or id (notification
// buttons, other extensions, tests), or ask for it with a quick pick.

import * as path from "node:path";
import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import type { Ctx } from "./ctx";
import * as ext from "./lsp_ext";
import { abilities, cancelledMessage, cancelPrompt, formatDiffStat, stateLabel, type Abilities } from "./model";
import { askFollowUp } from "./prompts";
import type { Node } from "./tree";

export type Cmd = (...args: unknown[]) => unknown;

/** Options of bgagents.spawn and bgagents.sendSelection when called with arguments: no prompts for what is given. */
export interface SpawnOptions {
    task?: string;
    agent?: string;
    model?: string;
    name?: string;
    repo?: string;
}

export function spawn(ctx: Ctx): Cmd {
    return async (opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as SpawnOptions;
        const client = ctx.requireClient();
        const repo = o.repo ?? (await pickRepo(ctx));
        if (repo === undefined) return undefined;
        let choice: { task: string | undefined; agent: string | undefined; model: string | undefined } | undefined;
        if (o.task !== undefined) choice = { task: o.task, agent: o.agent, model: o.model };
        else choice = await ctx.askSpawn(repo, { title: "Spawn agent" });
        if (choice?.task === undefined) return undefined;
        const params: ext.SpawnParams = { task: choice.task, repo };
        if (choice.agent !== undefined) params.agent = choice.agent;
        if (choice.model !== undefined) params.model = choice.model;
        if (o.name !== undefined) params.name = o.name;
        const res = await client.sendRequest(ext.spawn, params);
        if (res.agent === null) return undefined;
        ctx.spawned(res.agent);
        return res.agent;
    };
}

export function sendSelection(ctx: Ctx): Cmd {
    return async (opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as SpawnOptions;
        const client = ctx.requireClient();
        const editor = vscode.window.activeTextEditor;
        if (editor === undefined || editor.document.uri.scheme !== "file") {
            throw new Error("Open a file of the repository and select the code to send.");
        }
        const doc = editor.document;
        const args: ext.SendToAgentArgs = { uri: doc.uri.toString() };
        const sel = editor.selection;
        const diag = sel.isEmpty ? vscode.languages.getDiagnostics(doc.uri).find((d) => d.range.contains(sel.active)) : undefined;
        const range = !sel.isEmpty ? sel : diag?.range;
        if (range !== undefined) {
            args.range = { start: lspPos(range.start), end: lspPos(range.end) };
            args.text = doc.getText(range);
        }
        if (diag !== undefined) args.diagnostic = diag.source !== undefined && diag.source !== "" ? `${diag.source}: ${diag.message}` : diag.message;
        let choice: { task: string | undefined; agent: string | undefined; model: string | undefined } | undefined;
        if (o.task !== undefined || o.agent !== undefined || o.model !== undefined) choice = { task: o.task, agent: o.agent, model: o.model };
        else {
            const repo = ctx.rootOf(doc.uri.fsPath) ?? path.dirname(doc.uri.fsPath);
            const what = args.diagnostic !== undefined ? `fix “${args.diagnostic}”` : range !== undefined ? "improve the selected code" : undefined;
            const opt: { title: string; defaultTask?: string } = { title: "Send to agent" };
            if (what !== undefined) opt.defaultTask = `${what} in ${path.basename(doc.uri.fsPath)}`;
            choice = await ctx.askSpawn(repo, opt);
        }
        if (choice === undefined) return undefined;
        if (choice.task === undefined && range === undefined) throw new Error("Nothing selected: describe the task, or select code first.");
        if (choice.task !== undefined) args.task = choice.task;
        if (choice.agent !== undefined) args.agent = choice.agent;
        if (choice.model !== undefined) args.model = choice.model;
        if (o.name !== undefined) args.name = o.name;
        const res = (await client.sendRequest(lc.ExecuteCommandRequest.type, {
            command: ext.sendToAgentCommand,
            arguments: [args],
        })) as ext.AgentResult | null;
        if (res?.agent === undefined || res.agent === null) return undefined;
        ctx.spawned(res.agent);
        return res.agent;
    };
}

export function openWorktree(ctx: Ctx): Cmd {
    return async (arg?: unknown) => {
        const agent = await resolveAgent(ctx, arg, "open", "Open the worktree of which agent?");
        if (agent === undefined) return undefined;
        const res = await ctx.requireClient().sendRequest(ext.openWorktree, { id: agent.id });
        const uri = vscode.Uri.file(res.path);
        await vscode.commands.executeCommand("vscode.openFolder", uri, { forceNewWindow: true });
        return res.path;
    };
}

export function showDiff(ctx: Ctx): Cmd {
    return async (arg?: unknown) => {
        const agent = await resolveAgent(ctx, arg, "diff", "Show the changes of which agent?");
        if (agent === undefined) return undefined;
        await ctx.diffs.show(agent);
        return agent.id;
    };
}

export function openFileDiff(ctx: Ctx): Cmd {
    return async (arg?: unknown) => {
        const node = arg as Node | undefined;
        if (node?.kind !== "file") return undefined;
        const agent = ctx.store.get(node.agentId);
        if (agent === undefined) return undefined;
        await ctx.diffs.showFile(agent, node.file);
        return node.file.path;
    };
}

export function showLog(ctx: Ctx): Cmd {
    return async (arg?: unknown) => {
        const agent = await resolveAgent(ctx, arg, undefined, "Show the log of which agent?");
        if (agent === undefined) return undefined;
        await ctx.logs.show(agent);
        return agent.id;
    };
}

export function followUp(ctx: Ctx): Cmd {
    return async (arg?: unknown, message?: unknown) => {
        const agent = await resolveAgent(ctx, arg, "followUp", "Send a follow-up to which agent?");
        if (agent === undefined) return undefined;
        const questions = agent.questions ?? [];
        const text = typeof message === "string" ? message : await askFollowUp(agent.name, questions[0]?.text);
        if (text === undefined || text === "") return undefined;
        let allowDenied = false;
        const tools = [...new Set(questions.map((q) => q.tool).filter((t): t is string => t !== undefined && t !== ""))];
        if (tools.length > 0 && typeof message !== "string") {
            const allow = `Allow ${tools.join(", ")} for this run`;
            const picked = await vscode.window.showQuickPick([allow, "Don't allow"], {
                title: `Agent ${agent.name} was refused: ${tools.join(", ")}`,
                ignoreFocusOut: true,
            });
            if (picked === undefined) return undefined;
            allowDenied = picked === allow;
        }
        const params: ext.MessageParams = { id: agent.id, text };
        if (allowDenied) params.allowDenied = true;
        const res = await ctx.requireClient().sendRequest(ext.message, params);
        if (res.agent !== null) ctx.agentChanged(res.agent);
        return res.agent;
    };
}

/** Options of bgagents.cancel when called with arguments. */
export interface CancelOptions {
    /** false: cancel without asking (for keybindings and tests). */
    confirm?: boolean;
}

export function cancel(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as CancelOptions;
        const agent = await resolveAgent(ctx, arg, "cancel", "Cancel which agent?");
        if (agent === undefined) return undefined;
        if (o.confirm !== false) {
            const ask = cancelPrompt(agent);
            const choice = await vscode.window.showWarningMessage(ask.message, { modal: true, detail: ask.detail }, ask.button);
            if (choice !== ask.button) return undefined;
        }
        const client = ctx.requireClient();
        const res = await vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title: `Cancelling agent ${agent.name}…` },
            () => client.sendRequest(ext.cancel, { id: agent.id }),
        );
        if (res.agent !== null) {
            ctx.agentChanged(res.agent);
            void vscode.window.showInformationMessage(cancelledMessage(agent, res.agent));
        }
        return res.agent;
    };
}

/** Options of bgagents.merge when called with arguments. */
export interface MergeOptions {
    /** false: merge without asking (for keybindings and tests). */
    confirm?: boolean;
    strategy?: "merge" | "squash";
}

export function merge(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as MergeOptions;
        const agent = await resolveAgent(ctx, arg, "merge", "Merge which agent?");
        if (agent === undefined) return undefined;
        let strategy = o.strategy ?? "merge";
        if (o.confirm !== false) {
            const diff = formatDiffStat(agent.diff);
            const choice = await vscode.window.showInformationMessage(
                `Merge ${agent.branch} into ${agent.base}?`,
                {
                    modal: true,
                    detail: `${diff !== "" ? `${diff} in ${agent.diff.commits} commit(s). ` : ""}The worktree ${agent.worktree} and the branch are removed afterwards.`,
                },
                "Merge",
                "Squash and Merge",
            );
            if (choice === undefined) return undefined;
            strategy = choice === "Squash and Merge" ? "squash" : "merge";
        }
        const res = await ctx.requireClient().sendRequest(ext.merge, { id: agent.id, strategy });
        if (res.agent !== null) {
            ctx.agentChanged(res.agent);
            void vscode.window.showInformationMessage(`Merged ${agent.branch} into ${agent.base}.`);
        }
        return res.agent;
    };
}

/** Options of bgagents.discard when called with arguments. */
export interface DiscardOptions {
    /** false: discard without asking (for keybindings and tests). */
    confirm?: boolean;
    /** Also throw away unmerged commits and uncommitted changes, cancelling a live agent. Only used with confirm: false; otherwise the user is asked when the daemon refuses. */
    force?: boolean;
}

export function discard(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as DiscardOptions;
        const agent = await resolveAgent(ctx, arg, "discard", "Discard which agent?");
        if (agent === undefined) return undefined;
        const client = ctx.requireClient();
        if (o.confirm === false) {
            const res = await client.sendRequest(ext.discard, { id: agent.id, force: o.force === true });
            if (res.agent !== null) ctx.agentChanged(res.agent);
            return res.agent;
        }
        const ok = await vscode.window.showWarningMessage(
            `Discard agent ${agent.name}?`,
            { modal: true, detail: `Its worktree ${agent.worktree} and its branch ${agent.branch} are deleted.` },
            "Discard",
        );
        if (ok !== "Discard") return undefined;
        let res: ext.AgentResult;
        try {
            res = await client.sendRequest(ext.discard, { id: agent.id });
        } catch (e) {
            // The daemon refuses to lose work without force: say why and ask.
            if (!(e instanceof lc.ResponseError) || e.code !== ext.ErrorCodes.Refused) throw e;
            const force = await vscode.window.showWarningMessage(
                `Agent ${agent.name} has work that would be lost.`,
                { modal: true, detail: `${e.message}.\n\nDiscard it anyway? This cannot be undone.` },
                "Discard Anyway",
            );
            if (force !== "Discard Anyway") return undefined;
            res = await client.sendRequest(ext.discard, { id: agent.id, force: true });
        }
        if (res.agent !== null) ctx.agentChanged(res.agent);
        return res.agent;
    };
}

export function refresh(ctx: Ctx): Cmd {
    return async () => {
        await ctx.resync();
    };
}

export function restart(ctx: Ctx): Cmd {
    return async () => {
        await ctx.restart();
    };
}

export function showServerOutput(ctx: Ctx): Cmd {
    return () => ctx.output.show();
}

/** Commands that work without a connection to the daemon. */
const OFFLINE = new Set(["restart", "showServerOutput"]);

/**
 * Wraps a command: it connects first (a window without a repository
 * connects only when a command needs the daemon), and failures are shown to
 * the user (and logged) instead of vanishing.
 */
export function reporting(ctx: Ctx, name: string, cmd: Cmd): Cmd {
    return async (...args: unknown[]) => {
        try {
            if (!OFFLINE.has(name)) await ctx.ensureStarted();
            return await cmd(...args);
        } catch (e) {
            ctx.reportFailure(name, e);
            return undefined;
        }
    };
}

async function pickRepo(ctx: Ctx): Promise<string | undefined> {
    const roots = ctx.store.getRoots();
    if (roots.length === 0) throw new Error("Open a folder of a git repository first: agents work on the repository of the open folder.");
    if (roots.length === 1) return roots[0];
    const picked = await vscode.window.showQuickPick(
        roots.map((r) => ({ label: path.basename(r), description: r, repo: r })),
        { title: "Spawn agent: repository", ignoreFocusOut: true },
    );
    return picked?.repo;
}

/** The agent a command is about: from its argument, else picked from those that allow the action. */
async function resolveAgent(ctx: Ctx, arg: unknown, needs: keyof Abilities | undefined, title: string): Promise<ext.Agent | undefined> {
    let id: string | undefined;
    if (typeof arg === "string") id = arg;
    else if (isObject(arg)) {
        const o = arg as { kind?: unknown; id?: unknown; agentId?: unknown };
        if (o.kind === "file" && typeof o.agentId === "string") id = o.agentId;
        else if (typeof o.id === "string") id = o.id;
    }
    if (id !== undefined) {
        const agent = ctx.store.get(id);
        if (agent !== undefined) return agent;
        // Not in this window's scope (or not seen yet): ask the daemon.
        const res = await ctx.requireClient().sendRequest(ext.get, { id });
        return res.agent ?? undefined;
    }
    const candidates = ctx.store
        .tree()
        .flatMap((g) => g.agents)
        .filter((a) => needs === undefined || abilities(a)[needs]);
    if (candidates.length === 0) {
        void vscode.window.showInformationMessage("No agent in the open repositories can do that now.");
        return undefined;
    }
    const picked = await vscode.window.showQuickPick(
        candidates.map((a) => ({ label: a.name, description: `${stateLabel(a.state)} · ${a.branch}`, detail: a.task, agent: a })),
        { title, matchOnDescription: true, matchOnDetail: true },
    );
    return picked?.agent;
}

function lspPos(p: vscode.Position): ext.LSPPos {
    return { line: p.line, character: p.character };
}

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null;
}
