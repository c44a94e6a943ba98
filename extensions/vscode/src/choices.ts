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
    /** The agent's provider (vendor CLI), for the model step: models are offered per vendor. */
    provider?: string;
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
            ...(info !== undefined ? { provider: info.provider } : PROVIDERS.includes(def as (typeof PROVIDERS)[number]) ? { provider: def } : {}),
        });
        seen.add(def);
    } else {
        out.push({ label: DEFAULT_AGENT_LABEL, description: "the repository's [defaults].agent", value: undefined });
    }
    for (const a of infos) {
        if (seen.has(a.name) || (!a.configured && !runnable(a))) continue;
        seen.add(a.name);
        out.push({ label: a.name, description: describeAgent(a), value: a.name, provider: a.provider, ...(a.model !== undefined && a.model !== "" ? { model: a.model } : {}) });
    }
    if (result === undefined) {
        for (const p of PROVIDERS) {
            if (seen.has(p)) continue;
            seen.add(p);
            out.push({ label: p, description: "provider", value: p, provider: p });
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

/** A model an agent ran with, and that agent's provider. */
export interface KnownModel {
    model: string;
    provider: string;
}

/** Model name families of the vendor CLIs: a model of one family is not offered for another vendor's CLI. */
const MODEL_FAMILIES: [RegExp, string][] = [
    [/^(claude|sonnet|opus|haiku)\b/i, "claude"],
    [/^(gpt|o\d|codex)\b/i, "codex"],
    [/^gemini\b/i, "gemini"],
];

/**
 * Whether a model fits an agent of provider: it ran with that provider
 * before, or its name is of no other vendor's family and no other provider
 * ran it. Unknown provider (the daemon could not say): it fits.
 */
export function modelFits(model: string, provider: string | undefined, known: readonly KnownModel[]): boolean {
    if (provider === undefined || provider === "") return true;
    if (known.some((k) => k.model === model && k.provider === provider)) return true;
    if (known.some((k) => k.model === model && k.provider !== provider)) return false;
    const family = MODEL_FAMILIES.find(([re]) => re.test(model))?.[1];
    return family === undefined || family === provider || !MODEL_FAMILIES.some(([, p]) => p === provider);
}

/**
 * Model choices for an agent of `provider`: the default first (the setting
 * when the model fits that agent, else the agent's configured model, else
 * the CLI's own), then models agents of the same provider used before, then
 * "Other…". Without a provider (unknown), every model used before.
 */
export function modelChoices(setting: string, known: readonly KnownModel[], configured?: string, provider?: string): Choice[] {
    const out: Choice[] = [];
    const useSetting = setting !== "" && modelFits(setting, provider, known);
    if (useSetting) out.push({ label: setting, description: "default (setting bgagents.defaultModel)", value: setting });
    else if (configured !== undefined && configured !== "") out.push({ label: configured, description: "the agent's configured model", value: undefined });
    else out.push({ label: "Default model", description: "the agent's CLI's default", value: undefined });
    const models = known.filter((k) => provider === undefined || provider === "" || k.provider === provider).map((k) => k.model);
    for (const m of [...new Set(models)].sort()) {
        if (m === "" || (useSetting && m === setting) || m === configured) continue;
        out.push({ label: m, description: "used before", value: m });
    }
    out.push({ label: "Other…", description: "type a model name", value: undefined, other: true });
    return out;
}

/**
 * Reviewer choices for an agent's work. A reviewer runs in its vendor's
 * read-only mode, so only agents that have one (`readOnly`) are offered. An
 * agent of another vendor than the writer's comes first (an adversarial
 * review: a different model family looks at the work); then the daemon's
 * default, named ([review].agent of the repository, else the writer's own
 * agent); then the other agents that can review. Without a result (the
 * request failed), the default and the vendor providers.
 */
export function reviewerChoices(writer: { agent: string; provider?: string }, result: AgentsResult | undefined): Choice[] {
    const writerProvider = writer.provider ?? "";
    const infos = (result?.agents ?? []).filter((a) => runnable(a) && a.readOnly);
    const withModel = (a: AgentInfo): Partial<Choice> => (a.model !== undefined && a.model !== "" ? { model: a.model } : {});
    const other = infos.filter((a) => a.provider !== writerProvider);
    const same = infos.filter((a) => a.provider === writerProvider);
    const configured = result?.review?.agent;
    const defModel = result?.review?.model;
    const defName = configured !== undefined && configured !== "" ? configured : writer.agent;
    const def: Choice = {
        label: `Default reviewer: ${defName}`,
        description:
            configured !== undefined && configured !== ""
                ? `[review].agent of the repository${defModel !== undefined && defModel !== "" ? ` · ${defModel}` : ""}`
                : result !== undefined
                  ? "the writer's own agent (no [review].agent)"
                  : "[review].agent of the repository, else the writer's agent",
        value: undefined,
        ...(defModel !== undefined && defModel !== "" ? { model: defModel } : {}),
    };
    const out: Choice[] = [];
    const first = other.find((a) => a.name !== defName) ?? other[0];
    if (first !== undefined) {
        out.push({ label: first.name, description: `${describeAgent(first)} · another vendor than the writer's (${writerProvider || writer.agent})`, value: first.name, provider: first.provider, ...withModel(first) });
    }
    out.push(def);
    for (const a of [...other, ...same]) {
        if (a === first) continue;
        out.push({ label: a.name, description: describeAgent(a), value: a.name, provider: a.provider, ...withModel(a) });
    }
    if (result === undefined) {
        for (const p of PROVIDERS) {
            if (p === writerProvider) continue;
            out.push({ label: p, description: "provider", value: p, provider: p });
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
