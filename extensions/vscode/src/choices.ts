// Pure: the entries of the agent and model quick picks. The agents are what
// the daemon says the repository can run (bgagents/agents).

import type { AgentInfo, AgentsResult } from "./lsp_ext";

/** One quick-pick entry; value undefined means "leave it to the daemon's defaults". */
export interface Choice {
    label: string;
    description?: string;
    value: string | undefined;
    /** "Other…": ask for a free-form value. */
    other?: boolean;
    /** The agent's configured model, for the model step. */
    model?: string;
}

/** The label of the default agent's entry when the daemon did not say which agent that is. */
export const DEFAULT_AGENT_LABEL = "Default agent";

/** The vendor CLIs the daemon runs without an [agents.NAME] table (docs/agents.md); offered when the daemon cannot list agents. */
export const PROVIDERS = ["claude", "codex", "gemini", "opencode", "aider", "copilot"] as const;

/**
 * Agent choices from bgagents/agents: the default first (the setting, else
 * the daemon's default, which a spawn without `agent` runs), then the
 * configured agents, then the vendor CLIs that are installed. Configured
 * agents that cannot run are listed with the reason; vendor CLIs that are
 * not installed are left out. Without a result (the request failed), the
 * default and the vendor providers.
 */
export function agentChoices(setting: string, result: AgentsResult | undefined): Choice[] {
    const infos = result?.agents ?? [];
    const byName = new Map(infos.map((a) => [a.name, a] as const));
    const def = setting !== "" ? setting : result !== undefined && result.default !== "" ? result.default : undefined;
    const out: Choice[] = [];
    const seen = new Set<string>();
    if (def !== undefined) {
        const info = byName.get(def);
        const where = setting !== "" ? "default (setting bgagents.defaultAgent)" : "default";
        out.push({
            label: def,
            description: info !== undefined ? `${where} · ${describeAgent(info)}` : where,
            // Without the setting, leave the choice to the daemon, which reads the config again.
            value: setting !== "" ? setting : undefined,
            ...(info?.model !== undefined && info.model !== "" ? { model: info.model } : {}),
        });
        seen.add(def);
    } else {
        out.push({ label: DEFAULT_AGENT_LABEL, description: "the repository's [defaults].agent", value: undefined });
    }
    for (const a of infos) {
        if (seen.has(a.name) || (!a.configured && !runnable(a))) continue;
        seen.add(a.name);
        out.push({ label: a.name, description: describeAgent(a), value: a.name, ...(a.model !== undefined && a.model !== "" ? { model: a.model } : {}) });
    }
    if (result === undefined) {
        for (const p of PROVIDERS) {
            if (seen.has(p)) continue;
            seen.add(p);
            out.push({ label: p, description: "provider", value: p });
        }
    }
    return out;
}

function runnable(a: AgentInfo): boolean {
    return a.installed && (a.problem === undefined || a.problem === "");
}

/** "command", "claude · sonnet", "codex · cannot run: …". */
function describeAgent(a: AgentInfo): string {
    const parts = [a.provider];
    if (a.model !== undefined && a.model !== "") parts.push(a.model);
    if (!runnable(a)) parts.push(`cannot run: ${a.problem !== undefined && a.problem !== "" ? a.problem : "not installed"}`);
    return parts.join(" · ");
}

/**
 * Model choices: the default first (the setting, else the agent's
 * configured model, else the CLI's own), then models agents used before,
 * then "Other…".
 */
export function modelChoices(setting: string, known: readonly string[], configured?: string): Choice[] {
    const out: Choice[] = [];
    if (setting !== "") out.push({ label: setting, description: "default (setting bgagents.defaultModel)", value: setting });
    else if (configured !== undefined && configured !== "") out.push({ label: configured, description: "the agent's configured model", value: undefined });
    else out.push({ label: "Default model", description: "the agent's CLI's default", value: undefined });
    for (const m of [...new Set(known)].sort()) {
        if (m === "" || m === setting || m === configured) continue;
        out.push({ label: m, description: "used before", value: m });
    }
    out.push({ label: "Other…", description: "type a model name", value: undefined, other: true });
    return out;
}

/** Providers without a read-only mode, which the daemon refuses as reviewers (docs/agents.md). */
const NO_READ_ONLY = new Set(["command"]);

/**
 * Reviewer choices for an agent's work. A reviewer runs in its vendor's
 * read-only mode, so agents of the `command` provider are left out. An
 * agent of another vendor than the writer's comes first (an adversarial
 * review: a different model family looks at the work); then the daemon's
 * default ([review].agent, else the writer's own agent, which is offered
 * first when no other vendor can run); then the other agents that can
 * review. Without a result (the request failed), the default and the
 * vendor providers.
 */
export function reviewerChoices(writer: { agent: string; provider?: string }, result: AgentsResult | undefined): Choice[] {
    const writerProvider = writer.provider ?? "";
    const infos = (result?.agents ?? []).filter((a) => runnable(a) && !NO_READ_ONLY.has(a.provider));
    const withModel = (a: AgentInfo): Partial<Choice> => (a.model !== undefined && a.model !== "" ? { model: a.model } : {});
    const other = infos.filter((a) => a.provider !== writerProvider);
    const same = infos.filter((a) => a.provider === writerProvider);
    const def: Choice = {
        label: "Default reviewer",
        description: `[review].agent of the repository, else the writer's agent (${writer.agent})`,
        value: undefined,
    };
    const out: Choice[] = [];
    if (other.length > 0) {
        const first = other[0]!;
        out.push({ label: first.name, description: `${describeAgent(first)} · another vendor than the writer's (${writerProvider || writer.agent})`, value: first.name, ...withModel(first) });
    }
    out.push(def);
    for (const a of [...other.slice(1), ...same]) out.push({ label: a.name, description: describeAgent(a), value: a.name, ...withModel(a) });
    if (result === undefined) {
        for (const p of PROVIDERS) {
            if (p === writerProvider) continue;
            out.push({ label: p, description: "provider", value: p });
        }
    }
    return out;
}

/** How many variants a fan-out starts: one per agent picked (or a multiple of that), or 2 to 5 of one agent. */
export function variantChoices(agents: number): Choice[] {
    if (agents >= 2) {
        const out: Choice[] = [{ label: `${agents} variants`, description: "one per agent", value: String(agents) }];
        if (agents * 2 <= 10) out.push({ label: `${agents * 2} variants`, description: "two per agent, in turn", value: String(agents * 2) });
        return out;
    }
    return [2, 3, 4, 5].map((n) => ({ label: `${n} variants`, description: n === 2 ? "two attempts to compare" : `${n} attempts to compare`, value: String(n) }));
}
