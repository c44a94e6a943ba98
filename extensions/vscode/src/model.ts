// Pure logic about agents: what a state means, what a user may do with an
// agent, how it is labelled, and how snapshots from the daemon are merged.
// No `vscode` import here, so every function is unit-tested under plain Node.

import { groupLabel, latestReview, notes, tooltipFacts, type NameOf } from "./landing";
import type { Agent, DiffStat, State, Usage } from "./lsp_ext";

/** States in which an agent's process is being prepared or runs. */
export function isLive(state: State): boolean {
    return state === "queued" || state === "provisioning" || state === "running";
}

/** States that leave no worktree and no branch behind. */
export function isLanded(state: State): boolean {
    return state === "merged" || state === "discarded";
}

/** States in which the agent is on its way or working (needs_input waits for a person): no review, push or integration yet. */
export function isActive(state: State): boolean {
    return state === "queued" || state === "provisioning" || state === "running";
}

/** Whether the sidebar shows the agent: everything but merged and discarded ones. */
export function isShown(agent: Agent): boolean {
    return !isLanded(agent.state);
}

/** A reviewer (a read-only agent reviewing another one's work, §4.16). */
export function isReviewer(agent: Agent): boolean {
    return agent.reviewOf !== undefined && agent.reviewOf !== "";
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
    /** bgagents/review is accepted: finished work with commits, not a reviewer's. */
    review: boolean;
    /** bgagents/push and bgagents/pullRequest are accepted. */
    push: boolean;
    /** The agent can be one of the agents of bgagents/integrate. */
    integrate: boolean;
    /** A pipeline step can follow it (spawn's `after`). */
    follow: boolean;
    /** Its latest review that ended has findings to show. */
    findings: boolean;
}

/**
 * Whether the agent's process ever started: one that failed while its
 * worktree was prepared, was cancelled while queued, or is a pipeline step
 * whose predecessor failed has no worktree or work to act on (the daemon
 * refuses with -32042); only its log and Discard are offered.
 */
export function hasStarted(agent: Agent): boolean {
    return (agent.startedAt !== null && agent.startedAt !== undefined && agent.startedAt !== "") || (agent.head !== undefined && agent.head !== "");
}

export function abilities(agent: Agent): Abilities {
    const s = agent.state;
    const started = hasStarted(agent);
    const cleaned = agent.cleaned === true;
    const ended = !isLive(s) && !isLanded(s);
    // Finished work that is still on its branch (the daemon refuses active, landed, unchanged and never started agents).
    const landable = started && !isActive(s) && !isLanded(s) && !cleaned && agent.readOnly !== true && !isReviewer(agent);
    const { ended: review } = latestReview(agent);
    return {
        open: started && !cleaned && (ended || s === "running"),
        diff: started && !cleaned && s !== "queued" && s !== "provisioning",
        followUp: started && !cleaned && (s === "needs_input" || s === "succeeded" || s === "failed"),
        cancel: isLive(s) || s === "needs_input",
        merge: started && ended && !cleaned,
        discard: !isLanded(s),
        review: landable && agent.diff.commits > 0,
        push: landable,
        integrate: landable,
        follow: agent.readOnly !== true && !isReviewer(agent) && (isLive(s) || s === "needs_input" || (started && s === "succeeded")),
        findings: (review?.findings?.length ?? 0) > 0,
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
    if (a.review) words.push("review");
    if (a.findings) words.push("findings");
    if (a.push) words.push("push");
    if (a.follow) words.push("follow");
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

/**
 * The grey text after an agent's name in the sidebar: branch · age ·
 * diffstat · cost, then what landing it involves (pipeline step, review,
 * conflicts, push or pull request; see landing.ts notes). A variant of a
 * fan-out starts with its agent, which is what tells variants apart.
 */
export function describe(agent: Agent, now: Date, nameOf: NameOf = () => undefined): string {
    const parts = [agent.branch, formatAge(agent.createdAt, now)];
    if (agent.group !== undefined && agent.group !== "") parts.unshift(agent.agent);
    if (agent.cleaned === true) parts.push("no changes");
    else parts.push(formatDiffStat(agent.diff));
    parts.push(formatCost(agent.usage));
    parts.push(...notes(agent, nameOf));
    return parts.filter((p) => p !== "").join(" · ");
}

/** A Markdown tooltip for an agent. */
export function tooltip(agent: Agent, now: Date, nameOf: NameOf = () => undefined): string {
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
    facts.push(...tooltipFacts(agent, nameOf, esc));
    return [...lines, "", ...facts.map((f) => `- ${f}`)].join("\n");
}

/** The first line of s, cut to max characters with an ellipsis. */
export function firstLine(s: string, max: number): string {
    const line = s.split("\n", 1)[0] ?? "";
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** A row at the top of a repository in the tree: an agent, or the variants of one fan-out. */
export type TreeEntry = { kind: "agent"; agent: Agent } | { kind: "group"; group: string; label: string; agents: Agent[] };

/** Agents of one repository, for the tree. */
export interface RepoGroup {
    repo: string;
    /** Every agent shown, newest first (variants of a fan-out included). */
    agents: Agent[];
    /** The rows: agents, with the variants of a fan-out (two or more shown) under one group entry where its newest variant would be. */
    entries: TreeEntry[];
}

/**
 * Which repositories a window shows and announces: its repositories
 * (`roots`: the main checkouts of its workspace folders and of the
 * repositories found inside them) and any repository inside one of its
 * workspace folders (`folders`). An empty scope (a window without a
 * repository) shows nothing.
 */
export interface Scope {
    roots: readonly string[];
    folders: readonly string[];
}

export const EMPTY_SCOPE: Scope = { roots: [], folders: [] };

/** Whether an agent of repository `repo` belongs to the window. */
export function inScope(repo: string, scope: Scope): boolean {
    if (scope.roots.includes(repo)) return true;
    return scope.folders.some((f) => isInside(repo, f));
}

/** Whether path p is dir or inside it (POSIX paths, as the daemon records them). */
export function isInside(p: string, dir: string): boolean {
    if (p === dir) return true;
    return p.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

/**
 * The sidebar's content: shown agents of the window's scope, newest first,
 * grouped by repository in the order of the roots (then any others, by
 * path). An empty scope shows nothing. Reviewers are shown as the review
 * under the agent they review; one whose agent is not shown (it landed) is
 * shown by itself only while it works.
 */
export function buildTree(agents: Iterable<Agent>, scope: Scope): RepoGroup[] {
    const all = [...agents];
    const shownIds = new Set(all.filter((a) => isShown(a) && !isReviewer(a)).map((a) => a.id));
    const byRepo = new Map<string, Agent[]>();
    for (const a of all) {
        if (!isShown(a) || !inScope(a.repo, scope)) continue;
        if (isReviewer(a) && (shownIds.has(a.reviewOf!) || !(isLive(a.state) || a.state === "needs_input"))) continue;
        let list = byRepo.get(a.repo);
        if (list === undefined) byRepo.set(a.repo, (list = []));
        list.push(a);
    }
    const roots = scope.roots;
    const order = (r: string): number => {
        const i = roots.indexOf(r);
        return i < 0 ? roots.length : i;
    };
    return [...byRepo.entries()]
        .sort(([a], [b]) => order(a) - order(b) || a.localeCompare(b))
        .map(([repo, list]) => {
            const sorted = list.sort((x, y) => compareTimes(y.createdAt, x.createdAt) || x.name.localeCompare(y.name));
            return { repo, agents: sorted, entries: groupEntries(sorted) };
        });
}

/** The rows of one repository: the variants of a fan-out with two or more shown go under one entry, ordered by variant. */
export function groupEntries(sorted: readonly Agent[]): TreeEntry[] {
    const members = new Map<string, Agent[]>();
    for (const a of sorted) {
        if (a.group === undefined || a.group === "") continue;
        let list = members.get(a.group);
        if (list === undefined) members.set(a.group, (list = []));
        list.push(a);
    }
    const out: TreeEntry[] = [];
    const done = new Set<string>();
    for (const a of sorted) {
        const g = a.group;
        const list = g !== undefined ? members.get(g) : undefined;
        if (g === undefined || list === undefined || list.length < 2) {
            out.push({ kind: "agent", agent: a });
            continue;
        }
        if (done.has(g)) continue;
        done.add(g);
        const byVariant = [...list].sort((x, y) => (x.variant ?? 0) - (y.variant ?? 0) || x.name.localeCompare(y.name));
        out.push({ kind: "group", group: g, label: groupLabel(byVariant), agents: byVariant });
    }
    return out;
}

/** The agents of a group that an integration can take: all of them have ended, and at least two have work on their branch; undefined otherwise. */
export function integrable(agents: readonly Agent[]): Agent[] | undefined {
    if (agents.some((a) => isActive(a.state))) return undefined;
    const ok = agents.filter((a) => abilities(a).integrate && a.diff.commits > 0);
    return ok.length >= 2 ? ok : undefined;
}

/** Counts for the status bar. */
export interface Counts {
    /** Agents running now (not queued or being prepared; reviewers not counted: they show under their agent). */
    running: number;
    needsInput: number;
}

export function count(agents: Iterable<Agent>, scope: Scope): Counts {
    const c: Counts = { running: 0, needsInput: 0 };
    for (const a of agents) {
        if (!inScope(a.repo, scope) || isReviewer(a)) continue;
        if (a.state === "running") c.running++;
        else if (a.state === "needs_input") c.needsInput++;
    }
    return c;
}

/**
 * Whether a window announces an agent's events: every window of its
 * repository, except one opened on agents' worktrees (`worktreeFolders`,
 * Open Worktree), which announces only those agents.
 */
export function announcedIn(agent: Agent, worktreeFolders: readonly string[]): boolean {
    if (worktreeFolders.length === 0) return true;
    return worktreeFolders.some((f) => isInside(f, agent.worktree));
}

/** Tools of questions that are questions to the user, not refused tools (AskUserQuestion of Claude Code, request_user_input of Codex). */
const QUESTION_TOOLS = new Set(["AskUserQuestion", "request_user_input"]);

/** The tools an agent was refused (its questions' tools, without those that only ask the user something). */
export function refusedTools(agent: Agent): string[] {
    return [...new Set((agent.questions ?? []).map((q) => q.tool).filter((t): t is string => t !== undefined && t !== "" && !QUESTION_TOOLS.has(t)))];
}

/**
 * What of the sidebar a new snapshot changes: nothing shown ("none": e.g.
 * only token counts moved), only the agent's row and children ("agent"), or
 * the rows around it ("all": it appeared, left, changed state — its group's
 * description, its order — or its group).
 */
export function treeChange(previous: Agent | undefined, next: Agent, now: Date, nameOf: NameOf = () => undefined): "none" | "agent" | "all" {
    if (previous === undefined) return "all";
    // A reviewer shows as the review under its agent (from that agent's record), and offers Cancel while it works.
    if (isReviewer(next)) return previous.state === next.state ? "none" : "all";
    if (previous.state !== next.state || previous.group !== next.group || previous.name !== next.name || previous.createdAt !== next.createdAt) return "all";
    return shownKey(previous, now, nameOf) === shownKey(next, now, nameOf) ? "none" : "agent";
}

/** Everything an agent's row and its children show, but the token counts of its tooltip. */
function shownKey(a: Agent, now: Date, nameOf: NameOf): string {
    const children = JSON.stringify([a.reviews ?? [], a.conflicts ?? [], a.head ?? "", a.diff, a.cleaned === true]);
    return [describe(a, now, nameOf), contextValue(a), a.task, a.result, a.error, a.model, JSON.stringify(a.questions ?? []), children].join("\u0000");
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
 * An RFC 3339 timestamp as [milliseconds since the epoch, nanoseconds within
 * the millisecond], or undefined when it does not parse. The daemon writes
 * RFC3339Nano, which drops trailing zeros of the fraction, so the strings
 * cannot be compared as text ("…:07Z" sorts after "…:07.5Z"), and
 * Date.parse alone keeps only milliseconds.
 */
export function parseTime(s: string): [number, number] | undefined {
    const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$/i.exec(s);
    if (m === null) return undefined;
    const frac = (m[2] ?? "").padEnd(9, "0").slice(0, 9);
    const base = Date.parse(`${m[1]!}${m[3]!.toUpperCase()}`);
    if (Number.isNaN(base)) return undefined;
    return [base + Number(frac.slice(0, 3)), Number(frac.slice(3))];
}

/** Orders two RFC 3339 timestamps by the time they name: negative, 0 or positive. Unparsable ones sort first. */
export function compareTimes(a: string, b: string): number {
    const x = parseTime(a);
    const y = parseTime(b);
    if (x === undefined || y === undefined) return (x === undefined ? 0 : 1) - (y === undefined ? 0 : 1);
    return x[0] - y[0] || x[1] - y[1];
}

/**
 * Merges a snapshot into the known agents. Snapshots of one agent are
 * ordered by updatedAt (compared as times); an older one than the one held
 * is ignored (the daemon may deliver a list reply and a notification in
 * either order). Returns the previous snapshot and whether anything was
 * applied.
 */
export function applySnapshot(
    agents: Map<string, Agent>,
    next: Agent,
): { applied: boolean; previous: Agent | undefined } {
    const previous = agents.get(next.id);
    if (previous !== undefined && compareTimes(next.updatedAt, previous.updatedAt) < 0) {
        return { applied: false, previous };
    }
    agents.set(next.id, next);
    return { applied: true, previous };
}

/** A snapshot that was applied, with the one held before it. */
export interface AgentChange {
    agent: Agent;
    /** The snapshot held before, if any. */
    previous: Agent | undefined;
}

/**
 * Applies a fresh list (at connect, after a reconnect, on refresh) to the
 * known agents: each listed agent replaces the snapshot held unless that one
 * is newer. Agents that were held when the list was asked for (`before`)
 * and are neither listed nor updated since are dropped: that daemon does not
 * know them (another daemon, or a state directory that was reset). Returns
 * the snapshots that were applied, with what was held before, so that agents
 * that ended or stopped for input while the window was not listening can be
 * announced (noticeFor: once, since a second list with the same state is no
 * change).
 */
export function reconcile(agents: Map<string, Agent>, fresh: readonly Agent[], before?: ReadonlyMap<string, Agent>): AgentChange[] {
    const changes: AgentChange[] = [];
    const listed = new Set<string>();
    for (const a of fresh) {
        listed.add(a.id);
        const { applied, previous } = applySnapshot(agents, a);
        if (applied) changes.push({ agent: a, previous });
    }
    for (const [id, held] of before ?? []) {
        if (!listed.has(id) && agents.get(id) === held) agents.delete(id);
    }
    return changes;
}

/** The confirmation asked before cancelling an agent: it depends on whether it has started. */
export function cancelPrompt(agent: Agent): { message: string; detail: string; button: string } {
    switch (agent.state) {
        case "queued":
            return {
                message: `Cancel agent ${agent.name}?`,
                detail: "It is queued and has not started: it will not start. No worktree or branch is left behind.",
                button: "Cancel Agent",
            };
        case "provisioning":
            return {
                message: `Cancel agent ${agent.name}?`,
                detail: "Its worktree is still being prepared: it will not start, and the worktree is removed again.",
                button: "Cancel Agent",
            };
        case "needs_input":
            return {
                message: `Cancel agent ${agent.name}?`,
                detail: `It is waiting for your answer. It will not run again; its worktree and ${agent.branch} stay for Merge or Discard.`,
                button: "Cancel Agent",
            };
        default:
            return {
                message: `Stop agent ${agent.name}?`,
                detail: `It is stopped (SIGTERM, then SIGKILL after a grace period). What it did so far is committed to ${agent.branch}.`,
                button: "Stop Agent",
            };
    }
}

/** What is said after a cancel, given the agent before the request and the record it returned. */
export function cancelledMessage(before: Agent, after: Agent): string {
    if (after.state !== "cancelled") return `Agent ${after.name} had already ended: it is ${stateLabel(after.state)}.`;
    if (before.state === "queued" || before.state === "provisioning") {
        return `Agent ${after.name} was cancelled before it started; it will not start.`;
    }
    if (after.cleaned === true) return `Agent ${after.name} was cancelled. It had changed nothing.`;
    return `Agent ${after.name} was cancelled. Its work so far is on ${after.branch}.`;
}

/** A notification to show for a change of an agent, with the buttons it offers. */
export interface Notice {
    severity: "info" | "warning" | "error";
    message: string;
    actions: NoticeAction[];
}

export type NoticeAction = "Open Worktree" | "Show Diff" | "Merge" | "Reply" | "Show Log" | "Discard";

/**
 * The notification for an agent that reached succeeded, failed, needs_input
 * or lost; undefined for every other change. `since` is when this window
 * started listening: an agent first seen already ended before it is not
 * announced again.
 */
export function noticeFor(previous: Agent | undefined, next: Agent, since: Date): Notice | undefined {
    if (previous !== undefined && previous.state === next.state) return undefined;
    // A reviewer's end is announced as the verdict on the agent it reviews (landing.ts reviewNotices).
    if (isReviewer(next)) return undefined;
    if (previous === undefined) {
        const t = next.finishedAt !== null ? Date.parse(next.finishedAt) : Date.parse(next.updatedAt);
        if (Number.isNaN(t) || t < since.getTime()) return undefined;
    }
    const name = next.name;
    const a = abilities(next);
    // One that never started has nothing to reply to or open: its log says why.
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
                message: `Agent ${name} failed${hasStarted(next) ? "" : " before it started"}: ${firstLine(next.error, 200)}`,
                actions: hasStarted(next) ? withAbilities(["Show Log", "Reply", "Open Worktree"]) : ["Show Log", "Discard"],
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
