// Pure: what the sidebar and the notifications say about landing an
// agent's work (docs/protocol.md §4.16–4.18, §6.8, §6.9): its reviews and
// their findings, the branches it would conflict with, its pipeline step,
// its fan-out group, its integration, push and pull request. No `vscode`
// import, so everything here is unit-tested under plain Node.

import type { Agent, Conflict, Finding, Review } from "./lsp_ext";

/** The name of another agent by id, when this window knows it. */
export type NameOf = (id: string) => string | undefined;

/** A review has ended: it has a verdict, or says why it has none. */
export function reviewEnded(r: Review): boolean {
    return nonEmpty(r.verdict) || nonEmpty(r.error);
}

/** The agent's latest review, and the latest one that ended (either may be undefined). */
export function latestReview(a: Agent): { latest: Review | undefined; ended: Review | undefined } {
    const rs = a.reviews ?? [];
    const latest = rs[rs.length - 1];
    for (let i = rs.length - 1; i >= 0; i--) {
        if (reviewEnded(rs[i]!)) return { latest, ended: rs[i] };
    }
    return { latest, ended: undefined };
}

/** "approved", "changes requested", "commented" (or the verdict itself, readable). */
export function verdictText(verdict: string): string {
    switch (verdict) {
        case "approve":
            return "approved";
        case "request_changes":
            return "changes requested";
        case "comment":
            return "commented";
        default:
            return verdict.replace(/_/g, " ");
    }
}

/** Who reviews: the reviewer's agent and model ("asker", "codex (o3)"), else the reviewer's name. */
export function reviewerOf(r: Review): string {
    const who = nonEmpty(r.agent) ? r.agent : nonEmpty(r.name) ? r.name : r.id;
    return nonEmpty(r.model) ? `${who} (${r.model})` : who;
}

/** The review node's label: "Review: changes requested by asker", "Review: in progress by asker", "Review: no verdict by asker". */
export function reviewLabel(r: Review): string {
    let what: string;
    if (nonEmpty(r.verdict)) what = verdictText(r.verdict);
    else if (nonEmpty(r.error)) what = "no verdict";
    else what = "in progress";
    return `Review: ${what} by ${reviewerOf(r)}`;
}

/** The grey text of a review node: findings and summary, why there is no verdict, or the reviewer's state; "outdated" when the agent moved on since. */
export function reviewDescription(r: Review, agent: Agent): string {
    const parts: string[] = [];
    if (nonEmpty(r.verdict)) {
        const n = r.findings?.length ?? 0;
        if (n > 0) parts.push(plural(n, "finding"));
        if (nonEmpty(r.summary)) parts.push(firstLine(r.summary, 160));
    } else if (nonEmpty(r.error)) {
        parts.push(firstLine(r.error, 160));
    } else {
        parts.push(r.state === "needs_input" ? "needs input" : r.state);
    }
    if (isOutdated(r, agent)) parts.unshift(`of ${r.head.slice(0, 7)}, outdated`);
    return parts.join(" · ");
}

/** The review looked at another commit than the agent's branch has now (a follow-up ran since). */
export function isOutdated(r: Review, agent: Agent): boolean {
    return nonEmpty(r.head) && nonEmpty(agent.head) && r.head !== agent.head;
}

/** A codicon and theme color for a review node. */
export function reviewIcon(r: Review): { id: string; color?: string } {
    switch (r.verdict) {
        case "approve":
            return { id: "pass", color: "testing.iconPassed" };
        case "request_changes":
            return { id: "request-changes", color: "list.warningForeground" };
        case "comment":
            return { id: "comment" };
    }
    if (nonEmpty(r.error)) return { id: "warning", color: "list.warningForeground" };
    return { id: "sync~spin", color: "charts.blue" };
}

/** How bad a finding is, as editors grade problems. */
export type FindingSeverity = "error" | "warning" | "info";

export function findingSeverity(f: Finding): FindingSeverity {
    switch (f.severity) {
        case "high":
            return "error";
        case "medium":
            return "warning";
        default:
            return "info";
    }
}

/** "calc.go:5", "calc.go", or "" for a finding about no file. */
export function findingLocation(f: Finding): string {
    if (!nonEmpty(f.file)) return "";
    return f.line !== undefined && f.line > 0 ? `${f.file}:${f.line}` : f.file;
}

/** A finding node's label: its message's first line. */
export function findingLabel(f: Finding): string {
    return firstLine(f.message, 200);
}

/**
 * Where a finding's file is: relative paths are relative to the agent's
 * worktree while it exists, else to the main checkout; undefined for a
 * finding about no file. `line` is zero-based (0 when none was given).
 */
export function findingTarget(f: Finding, agent: Agent, worktreeExists: boolean): { path: string; line: number } | undefined {
    if (!nonEmpty(f.file)) return undefined;
    const dir = worktreeExists ? agent.worktree : agent.repo;
    const p = f.file.startsWith("/") ? f.file : joinPath(dir, f.file);
    return { path: p, line: f.line !== undefined && f.line > 0 ? f.line - 1 : 0 };
}

/** Who a conflict is with: the other agent's name, or "base main". */
export function conflictWith(c: Conflict, nameOf?: NameOf): string {
    if (nonEmpty(c.name)) return c.name;
    if (nonEmpty(c.agent)) return nameOf?.(c.agent) ?? c.agent;
    return `base ${nonEmpty(c.base) ? c.base : "branch"}`;
}

/** "Conflicts with right: NOTES.md, calc.go" or "Conflicts with base main: NOTES.md". */
export function conflictLabel(c: Conflict, nameOf?: NameOf): string {
    return `Conflicts with ${conflictWith(c, nameOf)}: ${(c.files ?? []).join(", ")}`;
}

/** The number of a pull request from its URL ("#7"), else "". */
export function prNumber(url: string): string {
    const m = /\/pull\/(\d+)/.exec(url);
    return m !== null ? `#${m[1]!}` : "";
}

/**
 * What the sidebar adds to an agent's description: its pipeline step
 * ("waiting for X" while queued, then "after X"), integration, latest
 * review, conflicts, and pull request or push.
 */
export function notes(a: Agent, nameOf: NameOf): string[] {
    const name = (id: string): string => nameOf(id) ?? id;
    const out: string[] = [];
    if (nonEmpty(a.after)) out.push(a.state === "queued" ? `waiting for ${name(a.after)}` : `after ${name(a.after)}`);
    if ((a.integrates ?? []).length > 0) out.push(`integrates ${(a.integrates ?? []).map(name).join(", ")}`);
    const { latest } = latestReview(a);
    if (latest !== undefined) {
        if (nonEmpty(latest.verdict)) {
            const sym = latest.verdict === "approve" ? "✓" : latest.verdict === "request_changes" ? "✗" : "•";
            out.push(`${sym} ${verdictText(latest.verdict)}`);
        } else if (nonEmpty(latest.error)) out.push("review: no verdict");
        else out.push("reviewing…");
    }
    // The base branch first (it blocks the merge), then at most one other agent: the children list them all.
    const names = [...(a.conflicts ?? [])].sort((x, y) => Number(nonEmpty(y.base)) - Number(nonEmpty(x.base))).map((c) => conflictWith(c, nameOf));
    if (names.length > 0) out.push(`⚠ conflicts with ${names.length <= 2 ? names.join(", ") : `${names[0]!} and ${names.length - 1} more`}`);
    if (nonEmpty(a.pullRequest)) out.push(`PR ${prNumber(a.pullRequest) || "open"}`);
    else if (a.pushed !== undefined && a.pushed !== null) out.push(`pushed to ${a.pushed.remote}`);
    return out;
}

/** Lines for the agent's tooltip (Markdown; `esc` escapes text). */
export function tooltipFacts(a: Agent, nameOf: NameOf, esc: (s: string) => string): string[] {
    const name = (id: string): string => esc(nameOf(id) ?? id);
    const out: string[] = [];
    if (nonEmpty(a.group)) out.push(`Variant ${a.variant ?? "?"} of a fan-out`);
    if (nonEmpty(a.after)) {
        out.push(
            a.state === "queued"
                ? `After ${name(a.after)}: waits until it has succeeded, then starts on its branch`
                : `After ${name(a.after)} (started on its branch)`,
        );
    }
    if ((a.integrates ?? []).length > 0) out.push(`Integrates ${(a.integrates ?? []).map(name).join(", ")}`);
    if (nonEmpty(a.reviewOf)) out.push(`Reviews ${name(a.reviewOf)} (read-only)`);
    const { latest } = latestReview(a);
    if (latest !== undefined) {
        let text = esc(reviewLabel(latest));
        if (nonEmpty(latest.summary)) text += `: ${esc(firstLine(latest.summary, 200))}`;
        else if (nonEmpty(latest.error)) text += `: ${esc(firstLine(latest.error, 200))}`;
        out.push(text);
    }
    for (const c of a.conflicts ?? []) out.push(`⚠ ${esc(conflictLabel(c, nameOf))}`);
    if (a.pushed !== undefined && a.pushed !== null) {
        out.push(`Pushed to \`${a.pushed.remote}/${a.pushed.branch}\` at \`${a.pushed.commit.slice(0, 7)}\``);
    }
    if (nonEmpty(a.pullRequest)) out.push(`Pull request: ${a.pullRequest}`);
    return out;
}

/** A notification about the end of a review, with the buttons it offers. */
export interface ReviewNotice {
    severity: "info" | "warning";
    message: string;
    actions: ("Show Findings" | "Reply" | "Merge")[];
    review: Review;
}

/**
 * The reviews of `next` that ended since `previous`: each gives one
 * notification (its verdict and findings, or why there is none). A record
 * seen for the first time announces reviews that ended after `since` (this
 * window started listening), so that a reconnect announces what ended
 * meanwhile once.
 */
export function reviewNotices(previous: Agent | undefined, next: Agent, since: Date): ReviewNotice[] {
    const before = new Map((previous?.reviews ?? []).map((r) => [r.id, r] as const));
    const out: ReviewNotice[] = [];
    for (const r of next.reviews ?? []) {
        if (!reviewEnded(r)) continue;
        const prev = before.get(r.id);
        if (prev !== undefined && reviewEnded(prev)) continue;
        if (previous === undefined) {
            const t = Date.parse(r.finishedAt ?? next.updatedAt);
            if (Number.isNaN(t) || t < since.getTime()) continue;
        }
        const by = nonEmpty(r.name) ? `${r.name} (${reviewerOf(r)})` : reviewerOf(r);
        if (!nonEmpty(r.verdict)) {
            out.push({ severity: "warning", message: `The review of ${next.name} by ${by} gave no verdict: ${firstLine(r.error ?? "", 200)}`, actions: [], review: r });
            continue;
        }
        const n = r.findings?.length ?? 0;
        const summary = nonEmpty(r.summary) ? ` — ${firstLine(r.summary, 160)}` : "";
        const actions: ReviewNotice["actions"] = [];
        if (n > 0) actions.push("Show Findings");
        if (r.verdict === "request_changes") actions.push("Reply");
        if (r.verdict === "approve") actions.push("Merge");
        out.push({
            severity: r.verdict === "request_changes" ? "warning" : "info",
            message: `Review of ${next.name} by ${by}: ${verdictText(r.verdict)}, ${plural(n, "finding")}${summary}`,
            actions,
            review: r,
        });
    }
    return out;
}

/**
 * What a follow-up asking the writer to address a review says, on one line
 * (it fills an input box, which has one): the verdict, the summary, then
 * the findings separated by "; ".
 */
export function followUpForReview(r: Review): string {
    let text = `Address the review by ${reviewerOf(r)} (${verdictText(r.verdict ?? "comment")})`;
    text += nonEmpty(r.summary) ? `: ${oneLine(r.summary)}.` : ".";
    const findings = (r.findings ?? []).map((f) => {
        const where = findingLocation(f);
        return `${where !== "" ? `${where}: ` : ""}${nonEmpty(f.severity) ? `[${f.severity}] ` : ""}${oneLine(f.message)}`;
    });
    if (findings.length > 0) text += ` Findings: ${findings.join("; ")}`;
    return text.replace(/\.\.$/, ".");
}

/** A conflict to announce: one notification per agent snapshot, for the pairs not announced before. */
export interface ConflictNotice {
    kind: "conflict";
    severity: "warning";
    message: string;
    actions: ("Show" | "Integrate…")[];
    /** The index (in the agent's conflicts) of the first new conflict, for Show. */
    index: number;
}

/**
 * The conflicts of `next` that are new since `previous`, as one
 * notification; each pair (two agents, or an agent and its base) is
 * announced once (`announced` keeps them; both agents of a pair get the
 * conflict in their record). A record seen for the first time (a list)
 * announces nothing: what was there before the window listened is in the
 * sidebar.
 */
export function conflictNotices(previous: Agent | undefined, next: Agent, get: (id: string) => Agent | undefined, announced: Set<string>): ConflictNotice[] {
    const key = (c: Conflict): string => (nonEmpty(c.agent) ? [next.id, c.agent].sort().join("|") : `${next.id}|base:${c.base ?? ""}`);
    const conflicts = next.conflicts ?? [];
    if (previous === undefined) {
        for (const c of conflicts) announced.add(key(c));
        return [];
    }
    const before = new Set((previous.conflicts ?? []).map(key));
    const fresh = conflicts.map((c, index) => ({ c, index })).filter(({ c }) => !before.has(key(c)) && !announced.has(key(c)));
    if (fresh.length === 0) return [];
    for (const { c } of fresh) announced.add(key(c));
    const nameOf = (id: string): string | undefined => get(id)?.name;
    const parts = fresh.map(({ c }) => {
        const files = (c.files ?? []).join(", ");
        return nonEmpty(c.agent) ? `${conflictWith(c, nameOf)} in ${files}` : `${c.base ?? "its base"} in ${files} (${c.base ?? "the base"} moved on since it started)`;
    });
    const others = fresh.filter(({ c }) => nonEmpty(c.agent));
    const message = `Agent ${next.name} conflicts with ${parts.join("; ")}${others.length > 0 ? " — merging both needs a resolution." : "."}`;
    const actions: ConflictNotice["actions"] = ["Show"];
    if (others.length === 1) {
        const other = get(others[0]!.c.agent!);
        if (other !== undefined && canIntegrateBoth(next, other)) actions.push("Integrate…");
    }
    return [{ kind: "conflict", severity: "warning", message, actions, index: fresh[0]!.index }];
}

/** Two ended agents with work on their branch: an integration can take them. */
function canIntegrateBoth(a: Agent, b: Agent): boolean {
    const ok = (x: Agent): boolean =>
        x.state !== "queued" && x.state !== "provisioning" && x.state !== "running" && x.state !== "merged" && x.state !== "discarded" && x.cleaned !== true && x.diff.commits > 0;
    return ok(a) && ok(b);
}

function oneLine(s: string): string {
    return s.replace(/\s*\n\s*/g, " ").trim();
}

/** The label of a fan-out group's node: "Try two ways — 3 variants". */
export function groupLabel(agents: readonly Agent[]): string {
    const task = agents[0]?.task ?? "";
    return `${firstLine(task, 60)} — ${agents.length} variants`;
}

/** The grey text of a group node: how many variants are in which state ("2 succeeded, 1 running"). */
export function groupDescription(agents: readonly Agent[]): string {
    const counts = new Map<string, number>();
    for (const a of agents) {
        const s = a.state === "needs_input" ? "needs input" : a.state;
        counts.set(s, (counts.get(s) ?? 0) + 1);
    }
    return [...counts.entries()].map(([s, n]) => `${n} ${s}`).join(", ");
}

/** The message after a push: "Pushed bgagents/x to origin (1a2b3c4)." */
export function pushedMessage(a: Agent): string {
    const p = a.pushed;
    if (p === undefined || p === null) return `Pushed ${a.branch}.`;
    return `Pushed ${p.branch} to ${p.remote} (${p.commit.slice(0, 7)}).`;
}

function nonEmpty(s: string | undefined | null): s is string {
    return s !== undefined && s !== null && s !== "";
}

function plural(n: number, word: string): string {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function firstLine(s: string, max: number): string {
    const line = s.split("\n", 1)[0] ?? "";
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function joinPath(dir: string, rel: string): string {
    return dir.endsWith("/") ? dir + rel : `${dir}/${rel}`;
}

/**
 * Where bgagents/merge lands an agent (agents/ops.go Merge): its base when
 * that is a local branch, else the branch checked out in the main checkout
 * (`current`; undefined when detached: the daemon refuses). A pipeline step
 * whose base is its predecessor's branch may land in the main checkout's
 * branch instead (`alternative`, sent as `into`).
 */
export function mergeTargets(a: Agent, baseIsBranch: boolean, current: string | undefined): { target: string | undefined; alternative?: string } {
    const target = baseIsBranch ? a.base : current;
    if (nonEmpty(a.after) && baseIsBranch && current !== undefined && current !== a.base) return { target, alternative: current };
    return { target };
}
