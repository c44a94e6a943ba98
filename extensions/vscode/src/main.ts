// Entry point: builds the context, registers the command table, connects.

import * as vscode from "vscode";

import * as commands from "./commands";
import { Ctx } from "./ctx";
import type { Agent } from "./lsp_ext";

/** What activate() returns: for tests and other extensions. */
export interface Api {
    readonly ctx: Ctx;
    /** Every agent this window knows, in scope or not. */
    agents(): Agent[];
}

let ctx: Ctx | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<Api> {
    const c = new Ctx(context);
    ctx = c;
    context.subscriptions.push(c);
    for (const [name, factory] of Object.entries(allCommands())) {
        context.subscriptions.push(vscode.commands.registerCommand(`bgagents.${name}`, commands.reporting(c, name, factory(c))));
    }
    // Connecting must not hold up activation: the view says "connecting…"
    // meanwhile. Ctx connects by itself only when the window has a
    // repository; commands and the view connect when they need the daemon.
    return { ctx: c, agents: () => c.store.all() };
}

export async function deactivate(): Promise<void> {
    await ctx?.stop();
    ctx = undefined;
}

/** The command table: `bgagents.<name>` for each entry. */
function allCommands(): Record<string, (ctx: Ctx) => commands.Cmd> {
    return {
        spawn: commands.spawn,
        spawnVariants: commands.spawnVariants,
        spawnAfter: commands.spawnAfter,
        sendSelection: commands.sendSelection,
        openWorktree: commands.openWorktree,
        showDiff: commands.showDiff,
        openFileDiff: commands.openFileDiff,
        showLog: commands.showLog,
        followUp: commands.followUp,
        cancel: commands.cancel,
        merge: commands.merge,
        discard: commands.discard,
        review: commands.review,
        showFindings: commands.showFindings,
        openFinding: commands.openFinding,
        push: commands.push,
        pullRequest: commands.pullRequest,
        integrate: commands.integrate,
        integrateVariants: commands.integrate,
        refresh: commands.refresh,
        restart: commands.restart,
        showServerOutput: commands.showServerOutput,
    };
}
