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
        out.push({ label: "Default agent", description: "the repository's [defaults].agent", value: undefined });
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
