// Pure logic about agents: what a state means, what a user may do with an
// agent, how it is labelled, and how snapshots from the daemon are merged.
// No `vscode` import here, so every function is unit-tested under plain Node.

import type { Agent, DiffStat, State, Usage } from "./lsp_ext";

/** States in which an agent's process is being prepared or runs. */
export function isLive(state: State): boolean {
    return state === "queued" || state === "provisioning" || state === "running";
}

/** States that leave no worktree and no branch behind. */
export function isLanded(state: State): boolean {
    return state === "merged" || state === "discarded";
}

/** Whether the sidebar shows the agent: everything but merged and discarded ones. */
export function isShown(agent: Agent): boolean {
    return !isLanded(agent.state);
}

/** What a user can do with an agent now; mirrors the daemon's refusals (docs/protocol.md §4). */
export interface Abilities {
    /** The worktree exists: open it, show the live diff against it. */
    open: boolean;
    /** There is a branch or a recorded head to diff. */
    diff: boolean;
    /** bgagents/message is accepted. */
    followUp: boolean;
    /** bgagents/cancel is accepted. */
    cancel: boolean;
    /** bgagents/merge is accepted. */
    merge: boolean;
    /** bgagents/discard is accepted (possibly only with force). */
    discard: boolean;
}

export function abilities(agent: Agent): Abilities {
    const s = agent.state;
    const cleaned = agent.cleaned === true;
    const ended = !isLive(s) && !isLanded(s);
    return {
        open: !cleaned && (ended || s === "running"),
        diff: !cleaned && s !== "queued" && s !== "provisioning",
        followUp: !cleaned && (s === "needs_input" || s === "succeeded" || s === "failed"),
        cancel: isLive(s) || s === "needs_input",
        merge: ended && !cleaned,
        discard: !isLanded(s),
    };
}

/** The TreeItem contextValue: space-separated words the menus match with `viewItem =~ /\bword\b/`. */
export function contextValue(agent: Agent): string {
    const a = abilities(agent);
    const words = ["agent", `state-${agent.state}`];
    if (a.open) words.push("open");
    if (a.diff) words.push("diff");
    if (a.followUp) words.push("followup");
    if (a.cancel) words.push("cancel");
    if (a.merge) words.push("merge");
    if (a.discard) words.push("discard");
    return words.join(" ");
}

/** A codicon id and an optional theme color id for a state. */
export interface StateIcon {
    id: string;
    color?: string;
}

export function stateIcon(state: State): StateIcon {
    switch (state) {
        case "queued":
            return { id: "clock" };
        case "provisioning":
            return { id: "loading~spin" };
        case "running":
            return { id: "sync~spin", color: "charts.blue" };
        case "needs_input":
            return { id: "question", color: "charts.yellow" };
        case "succeeded":
            return { id: "pass", color: "testing.iconPassed" };
        case "failed":
            return { id: "error", color: "testing.iconFailed" };
        case "cancelled":
            return { id: "circle-slash" };
        case "merged":
            return { id: "git-merge" };
        case "discarded":
            return { id: "trash" };
        case "lost":
            return { id: "warning", color: "list.warningForeground" };
    }
}

/** The state as a user reads it. */
export function stateLabel(state: State): string {
    return state === "needs_input" ? "needs input" : state;
}

/** Compact age of a timestamp relative to now: "now", "45s", "12m", "3h", "2d". */
export function formatAge(since: string, now: Date): string {
    const t = Date.parse(since);
    if (Number.isNaN(t)) return "";
    const s = Math.floor((now.getTime() - t) / 1000);
    if (s < 1) return "now";
    if (s < 60) return `${s}s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m}m`;
    const h = Math.floor(m / 60);
    if (h < 48) return `${h}h`;
    return `${Math.floor(h / 24)}d`;
}

/** "2 files +10 −3", or "" when nothing changed. */
export function formatDiffStat(d: DiffStat): string {
    if (d.files === 0 && d.additions === 0 && d.deletions === 0) return "";
    const files = d.files === 1 ? "1 file" : `${d.files} files`;
    return `${files} +${d.additions} −${d.deletions}`;
}

/** "$0.42", "~$0.42" when estimated from the price table, "" when there is no cost. */
export function formatCost(u: Usage): string {
    if (!(u.costUsd > 0)) return "";
    const v = u.costUsd < 0.01 ? "<$0.01" : `$${u.costUsd.toFixed(2)}`;
    return u.costEstimated === true ? `~${v}` : v;
}

/** "12.3k tokens", or "" when none were reported. */
export function formatTokens(u: Usage): string {
    const n = u.inputTokens + u.outputTokens + u.cacheReadTokens + u.cacheWriteTokens;
    if (n <= 0) return "";
    if (n < 1000) return `${n} tokens`;
    if (n < 1_000_000) return `${(n / 1000).toFixed(1)}k tokens`;
    return `${(n / 1_000_000).toFixed(1)}M tokens`;
}

/** The grey text after an agent's name in the sidebar: branch · age · diffstat · cost. */
export function describe(agent: Agent, now: Date): string {
    const parts = [agent.branch, formatAge(agent.createdAt, now)];
    if (agent.cleaned === true) parts.push("no changes");
    else parts.push(formatDiffStat(agent.diff));
    parts.push(formatCost(agent.usage));
    return parts.filter((p) => p !== "").join(" · ");
}

/** A Markdown tooltip for an agent. */
export function tooltip(agent: Agent, now: Date): string {
    const esc = (s: string): string => s.replace(/([\\`*_{}[\]<>()#+\-.!|])/g, "\\$1");
    const lines = [`**${esc(agent.name)}** — ${stateLabel(agent.state)}`, "", esc(firstLine(agent.task, 300))];
    const facts: string[] = [];
    facts.push(`Agent: ${esc(agent.agent)}${agent.model !== "" ? ` (${esc(agent.model)})` : ""}`);
    facts.push(`Branch: \`${agent.branch}\` from \`${agent.base}\``);
    facts.push(`Started ${formatAge(agent.createdAt, now)} ago`);
    const diff = formatDiffStat(agent.diff);
    if (diff !== "") facts.push(`Changes: ${diff} in ${agent.diff.commits} commit(s)`);
    const cost = [formatCost(agent.usage), formatTokens(agent.usage)].filter((s) => s !== "").join(", ");
    if (cost !== "") facts.push(`Usage: ${cost}`);
    if (agent.error !== "") facts.push(`Error: ${esc(agent.error)}`);
    else if (agent.result !== "") facts.push(`Result: ${esc(firstLine(agent.result, 200))}`);
    for (const q of agent.questions ?? []) facts.push(`Question: ${esc(q.text)}`);
    return [...lines, "", ...facts.map((f) => `- ${f}`)].join("\n");
}

/** The first line of s, cut to max characters with an ellipsis. */
export function firstLine(s: string, max: number): string {
    const line = s.split("\n", 1)[0] ?? "";
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** Agents of one repository, for the tree. */
export interface RepoGroup {
    repo: string;
    agents: Agent[];
}

/**
 * The sidebar's content: shown agents of the given repository roots (all
 * repositories when roots is empty), newest first, grouped by repository in
 * the order of roots (then any others, by path).
 */
export function buildTree(agents: Iterable<Agent>, roots: readonly string[]): RepoGroup[] {
    const byRepo = new Map<string, Agent[]>();
    for (const a of agents) {
        if (!isShown(a)) continue;
        if (roots.length > 0 && !roots.includes(a.repo)) continue;
        let list = byRepo.get(a.repo);
        if (list === undefined) byRepo.set(a.repo, (list = []));
        list.push(a);
    }
    const order = (r: string): number => {
        const i = roots.indexOf(r);
        return i < 0 ? roots.length : i;
    };
    return [...byRepo.entries()]
        .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
        .map(([repo, list]) => ({
            repo,
            agents: list.sort((x, y) => y.createdAt.localeCompare(x.createdAt) || x.name.localeCompare(y.name)),
        }));
}

/** Counts for the status bar. */
export interface Counts {
    running: number;
    needsInput: number;
}

export function count(agents: Iterable<Agent>, roots: readonly string[]): Counts {
    const c: Counts = { running: 0, needsInput: 0 };
    for (const a of agents) {
        if (roots.length > 0 && !roots.includes(a.repo)) continue;
        if (isLive(a.state)) c.running++;
        else if (a.state === "needs_input") c.needsInput++;
    }
    return c;
}

/** The status bar text: codicons and counts. */
export function statusText(c: Counts): string {
    if (c.running === 0 && c.needsInput === 0) return "$(robot) 0";
    const parts: string[] = [];
    if (c.running > 0) parts.push(`$(sync~spin) ${c.running}`);
    if (c.needsInput > 0) parts.push(`$(bell-dot) ${c.needsInput}`);
    return parts.join(" ");
}

export function statusTooltip(c: Counts): string {
    if (c.running === 0 && c.needsInput === 0) return "Background Agents: none running";
    const parts: string[] = [];
    if (c.running > 0) parts.push(`${c.running} running`);
    if (c.needsInput > 0) parts.push(`${c.needsInput} need${c.needsInput === 1 ? "s" : ""} input`);
    return `Background Agents: ${parts.join(", ")}`;
}

/**
 * Merges a snapshot into the known agents. Snapshots of one agent are
 * ordered by updatedAt; an older one than the one held is ignored (the daemon
 * may deliver a list reply and a notification in either order). Returns the
 * previous snapshot and whether anything was applied.
 */
export function applySnapshot(
    agents: Map<string, Agent>,
    next: Agent,
): { applied: boolean; previous: Agent | undefined } {
    const previous = agents.get(next.id);
    if (previous !== undefined && next.updatedAt < previous.updatedAt) {
        return { applied: false, previous };
    }
    agents.set(next.id, next);
    return { applied: true, previous };
}

/** A notification to show for a change of an agent, with the buttons it offers. */
export interface Notice {
    severity: "info" | "warning" | "error";
    message: string;
    actions: NoticeAction[];
}

export type NoticeAction = "Open Worktree" | "Show Diff" | "Merge" | "Reply" | "Show Log";

/**
 * The notification for an agent that reached succeeded, failed, needs_input
 * or lost; undefined for every other change. `since` is when this window
 * started listening: an agent first seen already ended before it is not
 * announced again.
 */
export function noticeFor(previous: Agent | undefined, next: Agent, since: Date): Notice | undefined {
    if (previous !== undefined && previous.state === next.state) return undefined;
    if (previous === undefined) {
        const t = next.finishedAt !== null ? Date.parse(next.finishedAt) : Date.parse(next.updatedAt);
        if (Number.isNaN(t) || t < since.getTime()) return undefined;
    }
    const name = next.name;
    const a = abilities(next);
    const withAbilities = (actions: NoticeAction[]): NoticeAction[] =>
        actions.filter(
            (x) =>
                (x !== "Open Worktree" || a.open) &&
                (x !== "Show Diff" || a.diff) &&
                (x !== "Merge" || a.merge) &&
                (x !== "Reply" || a.followUp),
        );
    switch (next.state) {
        case "succeeded": {
            if (next.cleaned === true) {
                return {
                    severity: "info",
                    message: `Agent ${name} finished without changing anything.`,
                    actions: ["Show Log"],
                };
            }
            const diff = formatDiffStat(next.diff);
            const result = next.result !== "" ? `: ${firstLine(next.result, 120)}` : "";
            return {
                severity: "info",
                message: `Agent ${name} finished${diff !== "" ? ` (${diff})` : ""} on ${next.branch}${result}`,
                actions: withAbilities(["Show Diff", "Open Worktree", "Merge"]),
            };
        }
        case "failed":
            return {
                severity: "error",
                message: `Agent ${name} failed: ${firstLine(next.error, 200)}`,
                actions: withAbilities(["Show Log", "Reply", "Open Worktree"]),
            };
        case "needs_input": {
            const q = next.questions?.[0]?.text ?? next.error.replace(/^needs input: /, "");
            return {
                severity: "warning",
                message: `Agent ${name} needs input: ${firstLine(q, 200)}`,
                actions: withAbilities(["Reply", "Show Log", "Open Worktree"]),
            };
        }
        case "lost":
            return {
                severity: "error",
                message: `Agent ${name} was lost: ${firstLine(next.error, 200)}`,
                actions: ["Show Log"],
            };
        default:
            return undefined;
    }
}
