// Pure: the entries of the agent and model quick picks, and a scan of the
// TOML config for configured agents.

/** One quick-pick entry; value undefined means "leave it to the daemon's defaults". */
export interface Choice {
    label: string;
    description?: string;
    value: string | undefined;
    /** "Other…": ask for a free-form value. */
    other?: boolean;
}

/** The vendor CLIs the daemon runs without an [agents.NAME] table (docs/agents.md). */
export const PROVIDERS = ["claude", "codex", "gemini", "opencode", "aider", "copilot"] as const;

/**
 * Agent choices: the default first (the setting, else the repository's
 * [defaults].agent), then the configured agents, then the vendor providers.
 */
export function agentChoices(setting: string, configured: { names: readonly string[]; repoDefault: string | undefined }): Choice[] {
    const def = setting !== "" ? setting : (configured.repoDefault ?? "claude");
    const out: Choice[] = [
        {
            label: def,
            description:
                setting !== "" ? "default (setting bgagents.defaultAgent)" : configured.repoDefault !== undefined ? "default ([defaults].agent)" : "default",
            // Without the setting, leave the choice to the daemon, which reads the config again.
            value: setting !== "" ? setting : undefined,
        },
    ];
    const seen = new Set([def]);
    for (const n of configured.names) {
        if (seen.has(n)) continue;
        seen.add(n);
        out.push({ label: n, description: `[agents.${n}]`, value: n });
    }
    for (const p of PROVIDERS) {
        if (seen.has(p)) continue;
        seen.add(p);
        out.push({ label: p, description: "provider", value: p });
    }
    return out;
}

/** Model choices: the default first, then models agents used before, then "Other…". */
export function modelChoices(setting: string, known: readonly string[]): Choice[] {
    const out: Choice[] = [];
    if (setting !== "") out.push({ label: setting, description: "default (setting bgagents.defaultModel)", value: setting });
    else out.push({ label: "Default model", description: "the agent's configured model, else its CLI's default", value: undefined });
    for (const m of [...new Set(known)].sort()) {
        if (m === "" || m === setting) continue;
        out.push({ label: m, description: "used before", value: m });
    }
    out.push({ label: "Other…", description: "type a model name", value: undefined, other: true });
    return out;
}

/** Table headers [agents.NAME] and [defaults] agent = "NAME" of a TOML text. */
export function scanToml(text: string): { agents: string[]; defaultAgent: string | undefined } {
    const agents: string[] = [];
    let defaultAgent: string | undefined;
    let table = "";
    for (const raw of text.split("\n")) {
        const line = raw.replace(/\s+#.*$/, "").trim();
        const header = /^\[\s*([^\]]+?)\s*\]$/.exec(line);
        if (header !== null) {
            table = header[1]!;
            const m = /^agents\.(?:"([^"]+)"|([A-Za-z0-9_-]+))$/.exec(table);
            if (m !== null) agents.push((m[1] ?? m[2])!);
            continue;
        }
        if (table === "defaults") {
            const kv = /^agent\s*=\s*"([^"]*)"$/.exec(line);
            if (kv !== null) defaultAgent = kv[1];
        }
    }
    return { agents, defaultAgent };
}
