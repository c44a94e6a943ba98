// One factory per command: `(ctx) => (...args) => result`. Agent commands
// take the agent from a tree node, an agent record or id (notification
// buttons, other extensions, tests), or ask for it with a quick pick.

import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import type { Ctx } from "./ctx";
import { git } from "./git";
import { conflictWith, findingTarget, latestReview, mergeTargets, prNumber, pushedMessage, reviewerOf, reviewEnded } from "./landing";
import * as ext from "./lsp_ext";
import { abilities, cancelledMessage, cancelPrompt, firstLine, formatDiffStat, integrable, isLive, refusedTools, stateLabel, type Abilities } from "./model";
import { askFollowUp, askIntegrator, askVariants } from "./prompts";
import type { Node } from "./tree";

export type Cmd = (...args: unknown[]) => unknown;

/** Options of bgagents.spawn and bgagents.sendSelection when called with arguments: no prompts for what is given. */
export interface SpawnOptions {
    task?: string;
    agent?: string;
    model?: string;
    name?: string;
    repo?: string;
    /** bgagents.spawn only: a pipeline step after this agent (id or name). */
    after?: string;
    /** bgagents.spawn only: a fan-out of this many variants. */
    variants?: number;
    /** bgagents.spawn only: the agents the variants take in turn. */
    agents?: string[];
}

export function spawn(ctx: Ctx): Cmd {
    return async (opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as SpawnOptions;
        const client = ctx.requireClient();
        const repo = o.repo ?? (await pickRepo(ctx, "Spawn agent: repository"));
        if (repo === undefined) return undefined;
        let choice: { task: string | undefined; agent: string | undefined; model: string | undefined } | undefined;
        if (o.task !== undefined) choice = { task: o.task, agent: o.agent, model: o.model };
        else choice = await ctx.askSpawn(repo, { title: "Spawn agent" });
        if (choice?.task === undefined) return undefined;
        const params: ext.SpawnParams = { task: choice.task, repo };
        // In a window on a linked worktree (an agent's, opened with Open Worktree) the agent starts from the branch checked out there, as the lightbulb's does.
        const base = o.after === undefined ? await worktreeBranch(ctx, repo) : undefined;
        if (base !== undefined) params.base = base;
        if (choice.agent !== undefined) params.agent = choice.agent;
        if (choice.model !== undefined) params.model = choice.model;
        if (o.name !== undefined) params.name = o.name;
        if (o.after !== undefined) params.after = o.after;
        if (o.variants !== undefined) params.variants = o.variants;
        if (o.agents !== undefined) params.agents = o.agents;
        return spawned(ctx, await client.sendRequest(ext.spawn, params));
    };
}

/** Records what a spawn started and selects it; returns the agent (the first variant of a fan-out). */
function spawned(ctx: Ctx, res: ext.SpawnResult): ext.Agent | undefined {
    if (res.agent === null) return undefined;
    const all = (res.agents ?? []).filter((a): a is ext.Agent => a !== null);
    ctx.spawned(res.agent, all.length > 0 ? all : [res.agent]);
    return res.agent;
}

/** "Spawn Variants…": several agents on one task (a fan-out), to compare or integrate them. */
export function spawnVariants(ctx: Ctx): Cmd {
    return async () => {
        const client = ctx.requireClient();
        const repo = await pickRepo(ctx, "Spawn variants: repository");
        if (repo === undefined) return undefined;
        const choice = await askVariants(ctx.config, repo, (r) => ctx.agentsOf(r));
        if (choice === undefined) return undefined;
        const params: ext.SpawnParams = { task: choice.task, repo, variants: choice.variants };
        const base = await worktreeBranch(ctx, repo);
        if (base !== undefined) params.base = base;
        if (choice.agents.length > 0) params.agents = choice.agents;
        return spawned(ctx, await client.sendRequest(ext.spawn, params));
    };
}

/** "Spawn After…": a pipeline step that starts on an agent's branch once that agent has succeeded. */
export function spawnAfter(ctx: Ctx): Cmd {
    return async (arg?: unknown) => {
        const dep = await resolveAgent(ctx, arg, "follow", "Spawn an agent after which agent?");
        if (dep === undefined) return undefined;
        const client = ctx.requireClient();
        const choice = await ctx.askSpawn(dep.repo, { title: `Spawn after ${dep.name}` });
        if (choice?.task === undefined) return undefined;
        const params: ext.SpawnParams = { task: choice.task, repo: dep.repo, after: dep.id };
        if (choice.agent !== undefined) params.agent = choice.agent;
        if (choice.model !== undefined) params.model = choice.model;
        return spawned(ctx, await client.sendRequest(ext.spawn, params));
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
        // Said before any question: the daemon would refuse it after them.
        const repo = ctx.repositoryOf(doc.uri.fsPath);
        if (repo === undefined) throw new Error(`${path.basename(doc.uri.fsPath)} is not in a git repository of this window: background agents work on the repositories of the open folders.`);
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
        // A string is sent as it is; {draft} fills the input box (a review's findings to address).
        const draft = isObject(message) && typeof message["draft"] === "string" ? message["draft"] : undefined;
        const text = typeof message === "string" ? message : await askFollowUp(agent.name, questions[0]?.text, draft, (o) => ctx.asking(o));
        if (text === undefined || text === "") return undefined;
        let allowDenied = false;
        // Questions asked through a tool (AskUserQuestion, request_user_input) are answered, not allowed.
        const tools = refusedTools(agent);
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
    /** The local branch to land in (default: the daemon's, see mergeTargets). */
    into?: string;
}

export function merge(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as MergeOptions;
        const agent = await resolveAgent(ctx, arg, "merge", "Merge which agent?");
        if (agent === undefined) return undefined;
        let strategy = o.strategy ?? "merge";
        // Where the daemon lands it: the base when it is a local branch, else the main checkout's branch.
        const { target, alternative } = mergeTargets(agent, await isLocalBranch(agent.repo, agent.base), await currentBranch(ctx, agent.repo));
        let into = o.into;
        const targetName = into ?? target ?? "the branch checked out in the main checkout";
        if (o.confirm !== false) {
            const diff = formatDiffStat(agent.diff);
            const base = (agent.conflicts ?? []).find((c) => c.base !== undefined && c.base !== "");
            const warn = base !== undefined ? `\n\n${base.base ?? agent.base} moved on since the agent started and the merge would conflict in ${(base.files ?? []).join(", ")}: the daemon will refuse it.` : "";
            const others = (agent.conflicts ?? []).filter((c) => c !== base).map((c) => conflictWith(c, (id) => ctx.store.get(id)?.name));
            const after = others.length > 0 ? `\n\nAfterwards ${others.join(", ")} will conflict with ${targetName}.` : "";
            const step =
                alternative !== undefined
                    ? `\n\nThis is a pipeline step: its base is ${agent.base}, its predecessor's branch. “Merge into ${alternative}” lands it in the main checkout's branch instead.`
                    : target !== undefined && target !== agent.base
                      ? `\n\nIts base ${agent.base} is not a local branch: it lands in ${target}, the main checkout's branch.`
                      : "";
            const alt = alternative !== undefined ? `Merge into ${alternative}` : undefined;
            const choice = await vscode.window.showInformationMessage(
                `Merge ${agent.branch} into ${targetName}?`,
                {
                    modal: true,
                    detail: `${diff !== "" ? `${diff} in ${agent.diff.commits} commit(s). ` : ""}The worktree ${agent.worktree} and the branch are removed afterwards.${step}${warn}${after}`,
                },
                "Merge",
                "Squash and Merge",
                ...(alt !== undefined ? [alt] : []),
            );
            if (choice === undefined) return undefined;
            strategy = choice === "Squash and Merge" ? "squash" : "merge";
            if (choice === alt) into = alternative;
        }
        const params: ext.MergeParams = { id: agent.id, strategy };
        if (into !== undefined) params.into = into;
        const res = await ctx.requireClient().sendRequest(ext.merge, params);
        if (res.agent !== null) {
            ctx.agentChanged(res.agent);
            void vscode.window.showInformationMessage(`Merged ${agent.branch} into ${into ?? targetName}.`);
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
        const live = isLive(agent.state) || agent.state === "needs_input";
        const ok = await vscode.window.showWarningMessage(
            `Discard agent ${agent.name}?`,
            {
                modal: true,
                detail: live
                    ? `It is ${stateLabel(agent.state)}: it is cancelled first. Its worktree ${agent.worktree} and its branch ${agent.branch} are deleted, with what it did so far. This cannot be undone.`
                    : `Its worktree ${agent.worktree} and its branch ${agent.branch} are deleted.`,
            },
            live ? "Cancel and Discard" : "Discard",
        );
        if (ok === undefined) return undefined;
        // A live agent: that one confirmation covers cancelling it and losing its work.
        if (live) {
            const res = await client.sendRequest(ext.discard, { id: agent.id, force: true });
            if (res.agent !== null) ctx.agentChanged(res.agent);
            return res.agent;
        }
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

/** Options of bgagents.review when called with arguments: no prompts. */
export interface ReviewOptions {
    agent?: string;
    model?: string;
}

/** "Review…": a read-only reviewer (another agent, in a fresh context) looks at the agent's work; its verdict shows under the agent. */
export function review(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const agent = await resolveAgent(ctx, arg, "review", "Review the work of which agent?");
        if (agent === undefined) return undefined;
        const client = ctx.requireClient();
        const choice = isObject(opts) ? (opts as ReviewOptions) : await ctx.askReviewer(agent);
        if (choice === undefined) return undefined;
        const params: ext.ReviewParams = { id: agent.id, repo: agent.repo };
        if (choice.agent !== undefined) params.agent = choice.agent;
        if (choice.model !== undefined) params.model = choice.model;
        const res = await client.sendRequest(ext.review, params);
        if (res.agent === null) return undefined;
        ctx.agentChanged(res.agent);
        // The review shows under the agent as soon as its record lists it.
        ctx.reveal(ctx.tree.agentNode(agent.id), { select: true, expand: true });
        vscode.window.setStatusBarMessage(`$(checklist) ${res.agent.name} is reviewing ${agent.name} with ${res.agent.agent} (read-only)`, 10_000);
        return res.agent;
    };
}

/**
 * "Show Review Findings": the findings of the agent's latest review that
 * ended (or of the review given) in the Problems panel, and the review
 * selected in the sidebar. Returns the files that got problems.
 */
export function showFindings(ctx: Ctx): Cmd {
    return async (arg?: unknown, reviewId?: unknown) => {
        let id = typeof reviewId === "string" ? reviewId : undefined;
        let target = arg;
        if (isObject(arg) && arg["kind"] === "review" && typeof arg["agentId"] === "string") {
            id = String(arg["reviewId"]);
            target = arg["agentId"];
        }
        const agent = await resolveAgent(ctx, target, "findings", "Show the review findings of which agent?");
        if (agent === undefined) return undefined;
        const r = id !== undefined ? agent.reviews?.find((x) => x.id === id) : latestReview(agent).ended;
        if (r === undefined || !reviewEnded(r)) throw new Error(`Agent ${agent.name} has no finished review yet.`);
        const uris = ctx.findings.show(agent, r);
        if ((r.findings ?? []).length === 0) {
            void vscode.window.showInformationMessage(`The review of ${agent.name} by ${reviewerOf(r)} has no findings.`);
        } else if (uris.length > 0) {
            await vscode.commands.executeCommand("workbench.actions.view.problems");
        }
        // Asked for (a notification's button, the context menu): the sidebar opens if it is closed.
        ctx.reveal(ctx.tree.reviewNode(agent.id, r.id), { select: true, expand: true, force: true });
        return uris;
    };
}

/** Opens the file of a finding (a tree node) at its line: in the agent's worktree while it exists, else in the main checkout. */
export function openFinding(ctx: Ctx): Cmd {
    return async (arg?: unknown) => {
        const node = arg as Node | undefined;
        if (node?.kind !== "finding") return undefined;
        const agent = ctx.store.get(node.agentId);
        const f = ctx.tree.finding(node);
        if (agent === undefined || f === undefined) return undefined;
        const target = findingTarget(f, agent, abilities(agent).open && fs.existsSync(agent.worktree));
        if (target === undefined) return undefined;
        if (!fs.existsSync(target.path)) throw new Error(`The review names ${f.file ?? ""}, which is not in ${path.dirname(target.path)}.`);
        const line = new vscode.Range(target.line, 0, target.line, 0);
        const editor = await vscode.window.showTextDocument(vscode.Uri.file(target.path), { selection: line, preview: true });
        editor.revealRange(line, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
        return target.path;
    };
}

/** Options of bgagents.push and bgagents.pullRequest when called with arguments: no prompts. */
export interface PushOptions {
    remote?: string;
    /** pullRequest only. */
    base?: string;
    title?: string;
    draft?: boolean;
}

/** "Push Branch": the agent's branch to a remote (the daemon's default remote, or one picked when the repository has several). */
export function push(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const agent = await resolveAgent(ctx, arg, "push", "Push the branch of which agent?");
        if (agent === undefined) return undefined;
        const client = ctx.requireClient();
        let remote: string | undefined;
        if (isObject(opts)) remote = (opts as PushOptions).remote;
        else {
            const picked = await pickRemote(agent.repo, (await ctx.agentsOf(agent.repo))?.push);
            if (picked === null) return undefined;
            remote = picked;
        }
        const params: ext.PushParams = { id: agent.id, repo: agent.repo };
        if (remote !== undefined) params.remote = remote;
        const res = await vscode.window.withProgress(
            { location: vscode.ProgressLocation.Notification, title: `Pushing ${agent.branch}…` },
            () => client.sendRequest(ext.push, params),
        );
        if (res.agent === null) return undefined;
        ctx.agentChanged(res.agent);
        const pushed = res.agent;
        void vscode.window.showInformationMessage(pushedMessage(pushed), "Open Pull Request").then((choice) => {
            if (choice === "Open Pull Request") void vscode.commands.executeCommand("bgagents.pullRequest", pushed.id);
        });
        return pushed;
    };
}

/** "Open Pull Request…": pushes the branch and opens a pull request with the GitHub CLI (gh); offers to open it in the browser. */
export function pullRequest(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const agent = await resolveAgent(ctx, arg, "push", "Open a pull request for which agent?");
        if (agent === undefined) return undefined;
        const client = ctx.requireClient();
        const params: ext.PushParams = { id: agent.id, repo: agent.repo };
        if (isObject(opts)) {
            const o = opts as PushOptions;
            if (o.remote !== undefined) params.remote = o.remote;
            if (o.base !== undefined) params.base = o.base;
            if (o.title !== undefined) params.title = o.title;
            if (o.draft !== undefined) params.draft = o.draft;
        } else {
            const push = (await ctx.agentsOf(agent.repo))?.push;
            // Without gh nothing can be opened: said before asking for a title.
            if (push?.gh === false) throw new GhMissing(agent);
            const remote = await pickRemote(agent.repo, push);
            if (remote === null) return undefined;
            if (remote !== undefined) params.remote = remote;
            const title = await vscode.window.showInputBox({
                title: `Pull request for ${agent.name} (1/2): title`,
                value: firstLine(agent.task, 200),
                prompt: `The branch ${agent.branch} is pushed first; the description has the task, the agent's summary and its latest review.`,
                ignoreFocusOut: true,
                validateInput: (v) => (v.trim() === "" ? "Give the pull request a title." : undefined),
            });
            if (title === undefined) return undefined;
            // The daemon asks for the agent's base when it is a local branch; otherwise gh uses the repository's default branch.
            const into = (await isLocalBranch(agent.repo, agent.base)) ? `into ${agent.base}` : "into the repository's default branch (gh decides)";
            const kind = await vscode.window.showQuickPick(
                [
                    { label: "Create Pull Request", draft: false, description: into },
                    { label: "Create Draft Pull Request", draft: true, description: into },
                ],
                { title: `Pull request for ${agent.name} (2/2)`, ignoreFocusOut: true },
            );
            if (kind === undefined) return undefined;
            params.title = title.trim();
            if (kind.draft) params.draft = true;
        }
        let res: ext.AgentResult;
        try {
            res = await vscode.window.withProgress(
                { location: vscode.ProgressLocation.Notification, title: `Opening a pull request for ${agent.name}…` },
                () => client.sendRequest(ext.pullRequest, params),
            );
        } catch (e) {
            // gh missing, not logged in or failing: the daemon says what to do; pushing alone still works.
            if (e instanceof lc.ResponseError && e.code === ext.ErrorCodes.External) {
                ctx.reportFailure("pullRequest", e, [{ title: "Push Branch", run: () => vscode.commands.executeCommand("bgagents.push", agent.id) }]);
                return undefined;
            }
            throw e;
        }
        if (res.agent === null) return undefined;
        ctx.agentChanged(res.agent);
        const url = res.agent.pullRequest ?? "";
        if (url !== "") {
            const n = prNumber(url);
            ctx.showLinkNotice(res.agent, `Pull request ${n !== "" ? `${n} ` : ""}for ${agent.name}: ${url}`, url);
        }
        return res.agent;
    };
}

/** Options of bgagents.integrate when called with arguments: no prompts for what is given. */
export interface IntegrateOptions {
    /** Agents (ids or names) to integrate, two or more. */
    ids?: string[];
    agent?: string;
    model?: string;
    name?: string;
    task?: string;
}

/**
 * "Integrate Agents…" (and "Integrate Variants" on a fan-out group, and
 * "Integrate…" on a conflict): an agent that merges the branches of two or
 * more agents on a new branch and resolves their conflicts.
 */
export function integrate(ctx: Ctx): Cmd {
    return async (arg?: unknown, opts?: unknown) => {
        const o = (isObject(opts) ? opts : {}) as IntegrateOptions;
        let agents = integrateTargets(ctx, arg);
        if (agents === undefined && o.ids !== undefined) {
            agents = o.ids.map((id) => ctx.store.get(id) ?? ctx.store.all().find((a) => a.name === id)).filter((a): a is ext.Agent => a !== undefined);
        }
        agents ??= await pickIntegrate(ctx);
        if (agents === undefined) return undefined;
        if (agents.length < 2) throw new Error("Integrating needs two or more agents that have finished with work on their branch.");
        const client = ctx.requireClient();
        const repo = agents[0]!.repo;
        const params: ext.IntegrateParams = { ids: agents.map((a) => a.id), repo };
        if (isObject(opts)) {
            if (o.agent !== undefined) params.agent = o.agent;
            if (o.model !== undefined) params.model = o.model;
            if (o.name !== undefined) params.name = o.name;
            if (o.task !== undefined) params.task = o.task;
        } else {
            const choice = await askIntegrator(ctx.config, repo, agents.map((a) => a.name), (r) => ctx.agentsOf(r));
            if (choice === undefined) return undefined;
            if (choice.value !== undefined) params.agent = choice.value;
        }
        const res = await client.sendRequest(ext.integrate, params);
        if (res.agent === null) return undefined;
        ctx.spawned(res.agent);
        return res.agent;
    };
}

/** The agents a tree node asks to integrate: a group's variants, or both sides of a conflict. */
function integrateTargets(ctx: Ctx, arg: unknown): ext.Agent[] | undefined {
    const node = isObject(arg) ? (arg as Partial<Node> & Record<string, unknown>) : undefined;
    if (node?.kind === "group" && typeof node["repo"] === "string" && typeof node["group"] === "string") {
        const agents = ctx.tree.groupAgents(node["repo"], node["group"]) ?? [];
        return integrable(agents) ?? agents.filter((a) => abilities(a).integrate);
    }
    if (node?.kind === "conflict" && typeof node["agentId"] === "string" && typeof node["index"] === "number") {
        const me = ctx.store.get(node["agentId"]);
        const c = me?.conflicts?.[node["index"]];
        const other = c?.agent !== undefined ? ctx.store.get(c.agent) : undefined;
        return me !== undefined && other !== undefined ? [me, other] : undefined;
    }
    return undefined;
}

/** A multi-select quick pick of the finished agents of a repository. */
async function pickIntegrate(ctx: Ctx): Promise<ext.Agent[] | undefined> {
    const repo = await pickRepo(ctx, "Integrate agents: repository");
    if (repo === undefined) return undefined;
    const candidates = (ctx.store.tree().find((g) => g.repo === repo)?.agents ?? []).filter((a) => abilities(a).integrate);
    if (candidates.length < 2) {
        void vscode.window.showInformationMessage("Integrating needs two or more agents that have finished with work on their branch.");
        return undefined;
    }
    const picked = await vscode.window.showQuickPick(
        candidates.map((a) => ({ label: a.name, description: `${stateLabel(a.state)} · ${a.branch} · ${formatDiffStat(a.diff)}`, detail: a.task, agent: a })),
        { title: "Integrate agents: pick two or more; their branches are merged in this order", canPickMany: true, matchOnDescription: true, ignoreFocusOut: true },
    );
    if (picked === undefined || picked.length === 0) return undefined;
    return picked.map((p) => p.agent);
}

/** The remote to push to: undefined for the daemon's default ([push].remote, else origin); null when the user cancelled. */
async function pickRemote(repo: string, push: ext.PushDefaults | undefined): Promise<string | undefined | null> {
    // The daemon's list (bgagents/agents); it says what is wrong when there is none.
    const remotes = (push?.remotes ?? []).filter((r) => r !== "");
    if (remotes.length < 2) return undefined;
    const def = push?.remote ?? "";
    const picked = await vscode.window.showQuickPick(
        [
            { label: def !== "" ? `${def} (default)` : "Default remote", description: "[push].remote of the repository, else origin", remote: undefined },
            ...remotes.filter((r) => r !== def).map((r) => ({ label: r, description: "", remote: r })),
        ],
        { title: `Push to which remote? (${repo})`, ignoreFocusOut: true },
    );
    return picked === undefined ? null : picked.remote;
}

/** The branch checked out in a linked worktree folder of the window for repo (an agent's worktree), if the window has one. */
async function worktreeBranch(ctx: Ctx, repo: string): Promise<string | undefined> {
    const folder = ctx.linkedFoldersOf(repo)[0];
    if (folder === undefined) return undefined;
    return currentBranch(ctx, folder);
}

/** The branch checked out in dir, undefined when detached or on failure. */
async function currentBranch(ctx: Ctx, dir: string): Promise<string | undefined> {
    try {
        const b = (await git(ctx.output, dir, ["symbolic-ref", "--quiet", "--short", "HEAD"])).trim();
        return b !== "" ? b : undefined;
    } catch {
        return undefined;
    }
}

/** Whether name is a local branch of the repository. */
async function isLocalBranch(repo: string, name: string): Promise<boolean> {
    if (name === "") return false;
    try {
        await git(undefined, repo, ["rev-parse", "--verify", "--quiet", `refs/heads/${name}`]);
        return true;
    } catch {
        return false;
    }
}

export function refresh(ctx: Ctx): Cmd {
    return async () => {
        ctx.tree.invalidateFiles();
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
            if (e instanceof GhMissing) {
                const id = e.agent.id;
                ctx.reportFailure(name, e, [
                    { title: "Push Branch", run: () => vscode.commands.executeCommand("bgagents.push", id) },
                    { title: "Install gh", run: () => vscode.env.openExternal(vscode.Uri.parse("https://cli.github.com")) },
                ]);
            } else ctx.reportFailure(name, e);
            return undefined;
        }
    };
}

async function pickRepo(ctx: Ctx, title: string): Promise<string | undefined> {
    const roots = ctx.store.getRoots();
    if (roots.length === 0) throw new Error("Open a folder of a git repository first: agents work on the repository of the open folder.");
    if (roots.length === 1) return roots[0];
    const picked = await vscode.window.showQuickPick(
        roots.map((r) => ({ label: path.basename(r), description: r, repo: r })),
        { title, ignoreFocusOut: true },
    );
    return picked?.repo;
}

/** The agent a command is about: from its argument, else picked from those that allow the action. */
async function resolveAgent(ctx: Ctx, arg: unknown, needs: keyof Abilities | undefined, title: string): Promise<ext.Agent | undefined> {
    let id: string | undefined;
    if (typeof arg === "string") id = arg;
    else if (isObject(arg)) {
        const o = arg as { kind?: unknown; id?: unknown; agentId?: unknown; reviewId?: unknown };
        // A review node stands for its reviewer (Show Log, Cancel); its findings and conflicts for their agent.
        if (o.kind === "review" && typeof o.reviewId === "string") id = o.reviewId;
        else if ((o.kind === "file" || o.kind === "finding" || o.kind === "conflict") && typeof o.agentId === "string") id = o.agentId;
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

/** The daemon has no GitHub CLI: no pull request can be opened (said before any question). */
class GhMissing extends Error {
    constructor(readonly agent: ext.Agent) {
        super(
            `The GitHub CLI (gh) is not installed where the bgagents daemon runs, so no pull request can be opened for ${agent.name}: install it (https://cli.github.com), run \`gh auth login\`, then restart the daemon (bgagents daemon --stop). Push Branch pushes ${agent.branch} without a pull request.`,
        );
    }
}

function lspPos(p: vscode.Position): ext.LSPPos {
    return { line: p.line, character: p.character };
}

function isObject(v: unknown): v is Record<string, unknown> {
    return typeof v === "object" && v !== null;
}
