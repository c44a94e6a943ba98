// The questions asked before an agent is spawned: the task, the agent and
// the model, as an input box and two quick picks. The agents offered are
// what the daemon says the repository can run (bgagents/agents).

import * as vscode from "vscode";

import type { Config } from "./config";
import { agentChoices, modelChoices, type Choice } from "./choices";
import type { AgentsResult } from "./lsp_ext";

export interface SpawnChoices {
    task: string | undefined;
    agent: string | undefined;
    model: string | undefined;
}

/** Asks the daemon which agents a repository can run; undefined when it cannot say. */
export type AgentLister = (repo: string) => Promise<AgentsResult | undefined>;

/**
 * Asks for the task (required unless defaultTask describes what happens
 * without one), then the agent and the model. Undefined when the user
 * cancelled a step.
 */
export async function askSpawn(
    config: Config,
    repo: string,
    knownModels: readonly string[],
    listAgents: AgentLister,
    opts: { title: string; defaultTask?: string },
): Promise<SpawnChoices | undefined> {
    // Asked while the user types the task.
    const agents = listAgents(repo);
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

    const agent = await pick(`${opts.title} (2/3): agent`, agentChoices(config.defaultAgent, await agents));
    if (agent === undefined) return undefined;

    let model = await pick(`${opts.title} (3/3): model`, modelChoices(config.defaultModel, knownModels, agent.model));
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
