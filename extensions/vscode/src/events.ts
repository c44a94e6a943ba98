// Pure formatting of an agent's events as readable log lines, and the
// bookkeeping that follows an event stream without gaps or duplicates.

import type { Event, Usage } from "./lsp_ext";
import { formatCost, formatTokens, stateLabel } from "./model";
import type { State } from "./lsp_ext";

/** "15:04:05" in local time. */
export function localClock(d: Date): string {
    const p = (n: number): string => String(n).padStart(2, "0");
    return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const INDENT = "         "; // width of "15:04:05 "

/** One event as one or more lines of text (no trailing newline). */
export function formatEvent(e: Event, clock: (d: Date) => string = localClock): string {
    const t = Date.parse(e.time);
    const time = Number.isNaN(t) ? "--:--:--" : clock(new Date(t));
    const body = eventBody(e);
    if (body === undefined) return "";
    const [first = "", ...rest] = body.split("\n");
    return [`${time} ${first}`, ...rest.map((l) => INDENT + "  " + l)].join("\n");
}

function eventBody(e: Event): string | undefined {
    const text = (e.text ?? "").replace(/\s+$/, "");
    switch (e.kind) {
        case "output":
            return e.stream === "stderr" ? `! ${text}` : `  ${text}`;
        case "state": {
            const state = e.state !== undefined && e.state !== "" ? stateLabel(e.state as State) : "state";
            return `● ${state}${text !== "" ? ` — ${text}` : ""}`;
        }
        case "session":
            return `  session ${e.sessionId ?? text}`;
        case "text":
            return `» ${text}`;
        case "tool_call": {
            const what = [e.command, e.path, text].find((s) => s !== undefined && s !== "") ?? "";
            return `⚙ ${e.tool ?? e.toolKind ?? "tool"}${what !== "" ? `: ${what}` : ""}`;
        }
        case "tool_result": {
            const status = e.isError === true ? "error" : (e.status ?? "done");
            return `  ↳ ${status}${text !== "" ? `: ${firstLines(text, 3)}` : ""}`;
        }
        case "usage": {
            const u = e.usage ?? undefined;
            const parts = u !== undefined ? usageParts(u) : [];
            if (e.turns !== undefined && e.turns > 0) parts.push(`${e.turns} turn${e.turns === 1 ? "" : "s"}`);
            return parts.length > 0 ? `  usage: ${parts.join(", ")}` : undefined;
        }
        case "question":
            return `? ${text}${e.tool !== undefined && e.tool !== "" ? ` (${e.tool})` : ""}`;
        case "result":
            return `${e.isError === true ? "✘" : "✔"} result${e.errorKind !== undefined && e.errorKind !== "" ? ` (${e.errorKind})` : ""}: ${text}`;
        case "raw":
            return `  ${(e.raw ?? text).slice(0, 500)}`;
        case "stall":
            return `… ${text !== "" ? text : "no output"}`;
        case "message":
            return `✉ you: ${text}`;
        case "progress":
            return `… ${text}`;
    }
}

function usageParts(u: Usage): string[] {
    return [formatTokens(u), formatCost(u)].filter((s) => s !== "");
}

function firstLines(s: string, n: number): string {
    const lines = s.split("\n");
    return lines.length > n ? `${lines.slice(0, n).join("\n")}\n… (${lines.length - n} more lines)` : s;
}

/**
 * Delivers one agent's events exactly once and in seq order, whether they
 * come from `bgagents/log` pages or `bgagents/output` notifications, which
 * arrive in either order. Events after a gap (notifications that came before
 * the page that precedes them, or after one was dropped by a full queue) are
 * held until the gap is filled; `gapFrom` then says where to fetch from.
 */
export class EventCursor {
    /** Next seq to deliver. */
    next = 1;
    /** Events beyond `next`, waiting for the ones before them. */
    private readonly held = new Map<number, Event>();

    /** Events of a log page (from `next`, or earlier when a page overlaps); `next` is the page's `next`. */
    page(events: readonly Event[], next: number): { events: Event[]; gapFrom?: number } {
        const out: Event[] = [];
        for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
            if (e.seq < this.next) continue;
            if (e.seq > this.next) {
                this.held.set(e.seq, e);
                continue;
            }
            out.push(e);
            this.next = e.seq + 1;
            out.push(...this.drain());
        }
        // The daemon says the log continues at `next`: nothing before it is still to come.
        if (next > this.next) {
            for (const seq of [...this.held.keys()].filter((s) => s < next).sort((a, b) => a - b)) {
                out.push(this.held.get(seq)!);
                this.held.delete(seq);
            }
            this.next = next;
        }
        out.push(...this.drain());
        return this.result(out);
    }

    /** Events of a notification: those that follow on are returned; the rest are held. */
    push(events: readonly Event[]): { events: Event[]; gapFrom?: number } {
        for (const e of events) if (e.seq >= this.next) this.held.set(e.seq, e);
        return this.result(this.drain());
    }

    /** Whether events are held behind a gap. */
    hasGap(): boolean {
        return this.held.size > 0;
    }

    private drain(): Event[] {
        const out: Event[] = [];
        for (let e = this.held.get(this.next); e !== undefined; e = this.held.get(this.next)) {
            this.held.delete(this.next);
            out.push(e);
            this.next++;
        }
        return out;
    }

    private result(events: Event[]): { events: Event[]; gapFrom?: number } {
        return this.held.size > 0 ? { events, gapFrom: this.next } : { events };
    }
}
