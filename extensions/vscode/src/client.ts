// The language client: runs `bgagents lsp`, which relays to the per-user
// daemon (starting it when none runs). Every window and the CLI share that
// daemon, so agents spawned anywhere show up everywhere.

import * as readline from "node:readline";
import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import * as ext from "./lsp_ext";
import { prepAgentId, Preparations, type PrepAgent, type PrepDisplay } from "./preparation";

/** Hooks the extension plugs into the client; see ctx.ts. */
export interface ClientHooks {
    /** Called for "bgagents.sendToAgent" (the server's code action) before it is sent: adds the editor's text of the range, task, agent and model, or returns undefined when the user cancelled. */
    completeSendToAgent(args: ext.SendToAgentArgs): Promise<ext.SendToAgentArgs | undefined>;
    /** Called with the agent a sendToAgent produced. */
    spawned(agent: ext.Agent): void;
    /** Whether a file is in one of the window's repositories (the code action is offered there only). */
    inRepository(file: string): boolean;
}

/** Declares capabilities.experimental.bgagents: the client handles bgagents/agentChanged and bgagents/output, so the daemon sends no window/showMessage popups. */
class BgagentsCapabilities implements lc.StaticFeature {
    getState(): lc.FeatureState {
        return { kind: "static" };
    }
    fillClientCapabilities(capabilities: lc.ClientCapabilities): void {
        const bgagents: ext.ExperimentalCapabilities = { notifications: true };
        capabilities.experimental = { ...(capabilities.experimental ?? {}), bgagents };
        // The daemon reports the preparation of agents this window spawns.
        capabilities.window = { ...(capabilities.window ?? {}), workDoneProgress: true };
    }
    initialize(): void {}
    clear(): void {}
}

/**
 * Shows the daemon's work-done progress of agents being prepared
 * (preparation.ts says what, and when it ends): the queued phase in the
 * status bar, preparing the worktree as a cancellable notification (one per
 * fan-out). vscode-languageclient would show it only in the status bar.
 */
export class PreparationProgress implements vscode.Disposable {
    readonly model: Preparations;

    constructor(lookup: (id: string) => PrepAgent | undefined, cancel: (token: string) => void) {
        this.model = new Preparations({ queued: (title, message) => display(vscode.ProgressLocation.Window, title, message), preparing: (title, onCancel) => display(vscode.ProgressLocation.Notification, title, undefined, onCancel) }, lookup, cancel);
    }

    handle(token: lc.ProgressToken, params: lc.WorkDoneProgressBegin | lc.WorkDoneProgressReport | lc.WorkDoneProgressEnd, next: lc.HandleWorkDoneProgressSignature): void {
        if (typeof token !== "string" || prepAgentId(token) === undefined) {
            next(token, params);
            return;
        }
        switch (params.kind) {
            case "begin":
                this.model.begin(token, params.title, params.message);
                return;
            case "report":
                this.model.report(token, params.message);
                return;
            case "end":
                this.model.end(token);
                // Let the built-in progress part clean up its listener.
                next(token, params);
                return;
        }
    }

    dispose(): void {
        this.model.endAll();
    }
}

/** A withProgress display that reports and ends on demand (also before withProgress called back). */
function display(location: vscode.ProgressLocation, title: string, first: string | undefined, onCancel?: () => void): PrepDisplay {
    let progress: vscode.Progress<{ message?: string }> | undefined;
    let resolve: (() => void) | undefined;
    let ended = false;
    const pending: string[] = first !== undefined ? [first] : [];
    void vscode.window.withProgress(
        { location, title, cancellable: onCancel !== undefined },
        (p, token) =>
            new Promise<void>((r) => {
                progress = p;
                resolve = r;
                if (onCancel !== undefined) token.onCancellationRequested(() => onCancel());
                for (const message of pending) p.report({ message });
                pending.length = 0;
                if (ended) r();
            }),
    );
    return {
        report: (message) => {
            if (progress !== undefined) progress.report({ message });
            else pending.push(message);
        },
        end: () => {
            ended = true;
            resolve?.();
        },
    };
}

/** The last lines `bgagents lsp` wrote to stderr: its reason when it exits. */
export class StderrTail {
    private lines: string[] = [];
    private closed: Promise<void> = Promise.resolve();

    /** A new `bgagents lsp`'s stderr. */
    attach(input: NodeJS.ReadableStream): void {
        this.closed = new Promise((resolve) => {
            input.once("close", () => resolve());
            input.once("end", () => resolve());
        });
    }

    /** Resolves when the stderr seen last was read to its end, or after ms (the process may live on). */
    settled(ms: number): Promise<void> {
        return Promise.race([this.closed, new Promise<void>((r) => setTimeout(r, ms))]);
    }

    add(line: string): void {
        if (line.trim() === "") return;
        this.lines.push(line);
        if (this.lines.length > 20) this.lines.splice(0, this.lines.length - 20);
    }

    /** The last lines, or "" (cleared by a new start). */
    text(max = 5): string {
        return this.lines.slice(-max).join("\n");
    }

    clear(): void {
        this.lines = [];
    }
}

/** What the client tells the extension about its connection. */
export interface ConnectionHooks {
    /** Whether a closed connection may be restarted: not before the first start succeeded (that failure is reported once, as it is). */
    restartable(): boolean;
    /** The connection closed and will not be restarted (after restarts within 3 minutes failed too); the client does not show it. */
    gaveUp(): void;
}

/** A language client that shows no popups of its own: the extension shows one error with the daemon's words (ctx.ts). */
class QuietClient extends lc.LanguageClient {
    override error(message: string, data?: unknown, _showNotification?: boolean | "force"): void {
        super.error(message, data, false);
    }
}

export function createClient(
    serverPath: string,
    output: vscode.LogOutputChannel,
    hooks: ClientHooks & ConnectionHooks,
    progress: PreparationProgress,
    stderr: StderrTail,
): { client: lc.LanguageClient } {
    const restarts: number[] = [];
    // No `transport`: with TransportKind.stdio the client would append --stdio, which `bgagents lsp` rejects.
    const server: lc.Executable = { command: serverPath, args: ["lsp"] };
    const clientOptions: lc.LanguageClientOptions = {
        // The daemon offers "Send to background agent" (a code action) on
        // files; the middleware below asks for it only in the window's
        // repositories (which can change while the client runs).
        documentSelector: [{ scheme: "file" }],
        outputChannel: output,
        revealOutputChannelOn: lc.RevealOutputChannelOn.Never,
        // `bgagents lsp` says on stderr why it cannot connect (another build's daemon, no permission, …): kept for the error shown.
        stdioOptions: {
            stdout: () => {},
            stderr: (input, channel) => {
                stderr.attach(input);
                readline.createInterface({ input, crlfDelay: Infinity, terminal: false, historySize: 0 }).on("line", (line) => {
                    channel.error(line);
                    stderr.add(line);
                });
            },
        },
        // A failed start is reported once by the extension (ctx.ts), not retried.
        initializationFailedHandler: () => false,
        errorHandler: {
            error: (_e, _m, count) => ({ action: count !== undefined && count <= 3 ? lc.ErrorAction.Continue : lc.ErrorAction.Shutdown, handled: true }),
            closed: () => {
                // Like the default: restart unless it closed 5 times within 3 minutes; say nothing (a reconnect is not news).
                if (!hooks.restartable()) return { action: lc.CloseAction.DoNotRestart, handled: true };
                const now = Date.now();
                restarts.push(now);
                while (restarts.length > 0 && now - restarts[0]! > 3 * 60_000) restarts.shift();
                if (restarts.length <= 4) return { action: lc.CloseAction.Restart, handled: true };
                hooks.gaveUp();
                return { action: lc.CloseAction.DoNotRestart, handled: true };
            },
        },
        initializationOptions: { client: "vscode" },
        middleware: {
            // No document is synced. The daemon keeps synced text only to cut
            // the selection for the code action, and reads the file from disk
            // otherwise; the extension puts the editor's text of the range
            // (saved or not) into the action's arguments before it runs
            // (ClientHooks.completeSendToAgent). So no open, edit or close of
            // any file is sent to the daemon.
            didOpen: () => Promise.resolve(),
            didChange: () => Promise.resolve(),
            didClose: () => Promise.resolve(),
            handleWorkDoneProgress: (token, params, next) => progress.handle(token, params, next),
            provideCodeActions: (document, range, context, token, next) => (hooks.inRepository(document.uri.fsPath) ? next(document, range, context, token) : []),
            executeCommand: async (command, args, next) => {
                if (command !== ext.sendToAgentCommand) return next(command, args);
                const first: unknown = args[0];
                if (typeof first !== "object" || first === null) return next(command, args);
                const completed = await hooks.completeSendToAgent(first as ext.SendToAgentArgs);
                if (completed === undefined) return undefined;
                const result: unknown = await next(command, [completed]);
                const agent = (result as ext.AgentResult | undefined)?.agent;
                if (agent !== undefined && agent !== null) hooks.spawned(agent);
                return result;
            },
        },
    };
    const client = new QuietClient("bgagents", "Background Agents", { run: server, debug: server }, clientOptions);
    client.registerFeature(new BgagentsCapabilities());
    return { client };
}
