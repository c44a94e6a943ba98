// The questions asked before an agent is spawned: the task, the agent and
// the model, as an input box and two quick picks. The agents offered are
// what the daemon says the repository can run (bgagents/agents).

import * as vscode from "vscode";

import type { Config } from "./config";
import { agentChoices, DEFAULT_AGENT_LABEL, modelChoices, reviewerChoices, variantChoices, type Choice, type KnownModel } from "./choices";
import type { Agent, AgentsResult } from "./lsp_ext";

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
    knownModels: readonly KnownModel[],
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

    const model = await askModel(`${opts.title} (3/3): model`, modelChoices(config.defaultModel, knownModels, agent.model, agent.provider));
    if (model === undefined) return undefined;
    return { task: task.trim() === "" ? undefined : task.trim(), agent: agent.value, model: model.value };
}

/** What a reviewer runs with: undefined members are left to the daemon. */
export interface ReviewChoices {
    agent: string | undefined;
    model: string | undefined;
}

/** Asks for the reviewer's agent (another vendor than the writer's first) and model. Undefined when the user cancelled. */
export async function askReviewer(writer: Agent, knownModels: readonly KnownModel[], listAgents: AgentLister): Promise<ReviewChoices | undefined> {
    const title = `Review ${writer.name}`;
    const agent = await pick(`${title} (1/2): reviewer`, reviewerChoices(writer, await listAgents(writer.repo)));
    if (agent === undefined) return undefined;
    const model = await askModel(`${title} (2/2): model`, modelChoices("", knownModels, agent.model, agent.provider));
    if (model === undefined) return undefined;
    return { agent: agent.value, model: model.value };
}

/** What a fan-out starts: the task, the agents the variants take in turn (none: the default agent), and how many. */
export interface VariantChoices {
    task: string;
    agents: string[];
    variants: number;
}

/** Asks for the task, the agents (several may be picked) and the number of variants. Undefined when the user cancelled. */
export async function askVariants(config: Config, repo: string, listAgents: AgentLister): Promise<VariantChoices | undefined> {
    const title = "Spawn variants";
    const agents = listAgents(repo);
    const task = await vscode.window.showInputBox({
        title: `${title} (1/3): task`,
        prompt: "What should the agents do? Each variant works on it in its own worktree and branch, so you can compare them.",
        placeHolder: "e.g. Make the parser twice as fast",
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() === "" ? "Describe the task." : undefined),
    });
    if (task === undefined) return undefined;
    const choices = agentChoices(config.defaultAgent, await agents);
    const items = choices.map((c, i) => ({ label: c.label, description: c.description ?? "", picked: i === 0, choice: c }));
    const picked = await vscode.window.showQuickPick(items, {
        title: `${title} (2/3): agents (pick several to compare them)`,
        canPickMany: true,
        ignoreFocusOut: true,
        matchOnDescription: true,
    });
    if (picked === undefined || picked.length === 0) return undefined;
    // The default entry alone leaves the agent to the daemon; with others, it is named (when the daemon said its name).
    const named = picked.map((p) => p.choice.value ?? (p.choice.label !== DEFAULT_AGENT_LABEL ? p.choice.label : undefined));
    const list = (picked.length > 1 ? named : picked.map((p) => p.choice.value)).filter((v): v is string => v !== undefined);
    const count = await pick(`${title} (3/3): how many`, variantChoices(picked.length));
    if (count === undefined) return undefined;
    return { task: task.trim(), agents: list, variants: Number(count.value) };
}

/** Asks which agent integrates the branches. Undefined when the user cancelled; `value` undefined is the default agent. */
export async function askIntegrator(config: Config, repo: string, names: readonly string[], listAgents: AgentLister): Promise<Choice | undefined> {
    return pick(`Integrate ${names.join(", ")}: agent that merges and resolves`, agentChoices(config.defaultAgent, await listAgents(repo)));
}

/** The model step: a choice, with "Other…" asking for a name. */
async function askModel(title: string, choices: Choice[]): Promise<Choice | undefined> {
    const model = await pick(title, choices);
    if (model?.other !== true) return model;
    const typed = await vscode.window.showInputBox({ title, prompt: "Model name, as the agent's CLI takes it", ignoreFocusOut: true });
    if (typed === undefined) return undefined;
    return { label: typed, value: typed.trim() === "" ? undefined : typed.trim() };
}

async function pick(title: string, choices: Choice[]): Promise<Choice | undefined> {
    const items = choices.map((c) => ({ label: c.label, description: c.description ?? "", choice: c }));
    const picked = await vscode.window.showQuickPick(items, { title, ignoreFocusOut: true, matchOnDescription: true });
    return picked?.choice;
}

/** Asks for a follow-up message (`draft` fills the box, e.g. a review's findings to address). */
export async function askFollowUp(name: string, question: string | undefined, draft?: string, onAsk?: (opts: { title: string; value: string }) => void): Promise<string | undefined> {
    const title = `Follow-up for agent ${name}`;
    onAsk?.({ title, value: draft ?? "" });
    const text = await vscode.window.showInputBox({
        title,
        prompt: question !== undefined ? `The agent asks: ${question}` : "What should the agent do next? It continues in the same worktree.",
        ...(draft !== undefined ? { value: draft } : {}),
        ignoreFocusOut: true,
        validateInput: (v) => (v.trim() === "" ? "Say what the agent should do next." : undefined),
    });
    return text?.trim();
}
