// The language client: runs `bgagents lsp`, which relays to the per-user
// daemon (starting it when none runs). Every window and the CLI share that
// daemon, so agents spawned anywhere show up everywhere.

import * as vscode from "vscode";
import * as lc from "vscode-languageclient/node";

import * as ext from "./lsp_ext";

/** Hooks the extension plugs into the client; see ctx.ts. */
export interface ClientHooks {
    /** Called for "bgagents.sendToAgent" (the server's code action) before it is sent: adds the editor's text of the range, task, agent and model, or returns undefined when the user cancelled. */
    completeSendToAgent(args: ext.SendToAgentArgs): Promise<ext.SendToAgentArgs | undefined>;
    /** Called with the agent a sendToAgent produced. */
    spawned(agent: ext.Agent): void;
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

/** Token prefix of the daemon's work-done progress for an agent being prepared. */
const PROGRESS_PREFIX = "bgagents-";

/**
 * Shows the daemon's work-done progress ("bgagents: preparing NAME") as a
 * notification. vscode-languageclient would show it only in the status bar
 * (ProgressLocation.Window), which is easy to miss for a step that takes a
 * second or two.
 */
class PreparationProgress {
    private readonly active = new Map<
        lc.ProgressToken,
        { progress?: vscode.Progress<{ message?: string }>; resolve: () => void; pending: string[] }
    >();

    handle(token: lc.ProgressToken, params: lc.WorkDoneProgressBegin | lc.WorkDoneProgressReport | lc.WorkDoneProgressEnd, next: lc.HandleWorkDoneProgressSignature): void {
        if (typeof token !== "string" || !token.startsWith(PROGRESS_PREFIX)) {
            next(token, params);
            return;
        }
        switch (params.kind) {
            case "begin": {
                if (this.active.has(token)) return;
                const entry: { progress?: vscode.Progress<{ message?: string }>; resolve: () => void; pending: string[] } = {
                    resolve: () => {},
                    pending: params.message !== undefined ? [params.message] : [],
                };
                this.active.set(token, entry);
                void vscode.window.withProgress(
                    { location: vscode.ProgressLocation.Notification, title: params.title, cancellable: false },
                    (progress) =>
                        new Promise<void>((resolve) => {
                            entry.progress = progress;
                            entry.resolve = resolve;
                            for (const message of entry.pending) progress.report({ message });
                            entry.pending = [];
                            // The entry may have ended before withProgress called back.
                            if (!this.active.has(token)) resolve();
                        }),
                );
                return;
            }
            case "report": {
                const entry = this.active.get(token);
                if (entry === undefined || params.message === undefined) return;
                if (entry.progress !== undefined) entry.progress.report({ message: params.message });
                else entry.pending.push(params.message);
                return;
            }
            case "end": {
                const entry = this.active.get(token);
                this.active.delete(token);
                entry?.resolve();
                // Let the built-in progress part clean up its listener.
                next(token, params);
                return;
            }
        }
    }

    dispose(): void {
        for (const entry of this.active.values()) entry.resolve();
        this.active.clear();
    }
}

export function createClient(serverPath: string, output: vscode.LogOutputChannel, hooks: ClientHooks): { client: lc.LanguageClient; disposable: vscode.Disposable } {
    const progress = new PreparationProgress();
    // No `transport`: with TransportKind.stdio the client would append --stdio, which `bgagents lsp` rejects.
    const server: lc.Executable = { command: serverPath, args: ["lsp"] };
    const clientOptions: lc.LanguageClientOptions = {
        // The daemon offers "Send to background agent" (a code action) on any file.
        documentSelector: [{ scheme: "file" }],
        outputChannel: output,
        revealOutputChannelOn: lc.RevealOutputChannelOn.Never,
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
    const client = new lc.LanguageClient("bgagents", "Background Agents", { run: server, debug: server }, clientOptions);
    client.registerFeature(new BgagentsCapabilities());
    return { client, disposable: { dispose: () => progress.dispose() } };
}
