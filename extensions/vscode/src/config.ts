// The extension's settings (package.json `contributes.configuration`).

import * as vscode from "vscode";

export const SECTION = "bgagents";

export class Config {
    private get cfg(): vscode.WorkspaceConfiguration {
        return vscode.workspace.getConfiguration(SECTION);
    }

    /** The bgagents binary: a command on PATH or an absolute path. */
    get serverPath(): string {
        const p = this.cfg.get<string>("path", "bgagents").trim();
        return p === "" ? "bgagents" : p;
    }

    /** Agent offered first when spawning; "" means the repository's default. */
    get defaultAgent(): string {
        return this.cfg.get<string>("defaultAgent", "").trim();
    }

    /** Model offered first when spawning; "" means the agent's default. */
    get defaultModel(): string {
        return this.cfg.get<string>("defaultModel", "").trim();
    }

    /** Whether a configuration change needs a new connection to the daemon. */
    static needsRestart(e: vscode.ConfigurationChangeEvent): boolean {
        return e.affectsConfiguration(`${SECTION}.path`);
    }
}
