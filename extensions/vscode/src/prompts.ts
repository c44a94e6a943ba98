// The questions asked before an agent is spawned: the task, the agent and
// the model, as an input box and two quick picks.

import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";

import type { Config } from "./config";
import { agentChoices, modelChoices, scanToml, type Choice } from "./choices";

export interface SpawnChoices {
    task: string | undefined;
    agent: string | undefined;
    model: string | undefined;
}

/**
 * Asks for the task (required unless defaultTask describes what happens
 * without one), then the agent and the model. Undefined when the user
 * cancelled a step.
 */
export async function askSpawn(
    config: Config,
    repo: string,
    knownModels: readonly string[],
    opts: { title: string; defaultTask?: string },
): Promise<SpawnChoices | undefined> {
    const task = await vscode.window.showInputBox({
        title: `${opts.title} (1/3): task`,
        prompt:
            opts.defaultTask !== undefined
                ? "What should the agent do? Leave empty for the default task."
                : "What should the agent do? It works in its own worktree and branch.",
        placeHolder: opts.defaultTask ?? "e.g. Add tests for the parser and fix what they find",
        ignoreFocusOut: true,
        validateInput: (v) => (opts.defaultTask === undefined && v.trim() === "" ? "Describe the task." : undefined),
    });
    if (task === undefined) return undefined;

    const agent = await pick(`${opts.title} (2/3): agent`, agentChoices(config.defaultAgent, configuredAgents(repo)));
    if (agent === undefined) return undefined;

    let model = await pick(`${opts.title} (3/3): model`, modelChoices(config.defaultModel, knownModels));
    if (model === undefined) return undefined;
    if (model.other === true) {
        const typed = await vscode.window.showInputBox({
            title: `${opts.title} (3/3): model`,
            prompt: "Model name, as the agent's CLI takes it",
            ignoreFocusOut: true,
        });
        if (typed === undefined) return undefined;
        model = { label: typed, value: typed.trim() === "" ? undefined : typed.trim() };
    }
    return { task: task.trim() === "" ? undefined : task.trim(), agent: agent.value, model: model.value };
}

async function pick(title: string, choices: Choice[]): Promise<Choice | undefined> {
    const items = choices.map((c) => ({ label: c.label, description: c.description ?? "", choice: c }));
    const picked = await vscode.window.showQuickPick(items, { title, ignoreFocusOut: true, matchOnDescription: true });
    return picked?.choice;
}

/** Asks for a follow-up message. */
export async function askFollowUp(name: string, question: string | undefined): Promise<string | undefined> {
    const text = await vscode.window.showInputBox({
        title: `Follow-up for agent ${name}`,
        prompt: question !== undefined ? `The agent asks: ${question}` : "What should the agent do next? It continues in the same worktree.",
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() === "" ? "Say what the agent should do next." : undefined),
    });
    return text?.trim();
}

/**
 * The agents configured for a repository, from the [agents.NAME] tables of
 * its .bgagents.toml and of the user's config.toml, and the repository's
 * [defaults].agent. The daemon has no request that lists them, so the table
 * headers are read here.
 */
export function configuredAgents(repo: string): { names: string[]; repoDefault: string | undefined } {
    const files = [userConfigPath(), path.join(repo, ".bgagents.toml")];
    const names: string[] = [];
    let repoDefault: string | undefined;
    for (const file of files) {
        let text: string;
        try {
            text = fs.readFileSync(file, "utf8");
        } catch {
            continue;
        }
        const parsed = scanToml(text);
        names.push(...parsed.agents);
        if (parsed.defaultAgent !== undefined) repoDefault = parsed.defaultAgent;
    }
    return { names: [...new Set(names)], repoDefault };
}

function userConfigPath(): string {
    const env = process.env["BGAGENTS_CONFIG"];
    if (env !== undefined && env !== "") return env;
    const xdg = process.env["XDG_CONFIG_HOME"];
    return path.join(xdg !== undefined && xdg !== "" ? xdg : path.join(os.homedir(), ".config"), "bgagents", "config.toml");
}
