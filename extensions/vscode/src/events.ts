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
 * Follows one agent's event log: events from the `bgagents/log` reply and
 * from `bgagents/output` notifications arrive in either order; each seq is
 * delivered once, in order. Notifications that arrive before the reply are
 * held until it is in. A gap (a notification dropped by a full queue) is
 * reported so the caller can fetch the missing events.
 */
export class EventCursor {
    /** Next seq to deliver. */
    next = 1;
    private ready = false;
    private held: Event[] = [];

    /** Holds notifications until the next page: call it before fetching missing events. */
    refetch(): void {
        this.ready = false;
    }

    /** Events of a log page starting at the cursor; returns the ones to print. */
    page(events: readonly Event[], next: number): Event[] {
        const out = events.filter((e) => e.seq >= this.next);
        if (out.length > 0) this.next = Math.max(this.next, out[out.length - 1]!.seq + 1);
        this.next = Math.max(this.next, next);
        this.ready = true;
        const held = this.held;
        this.held = [];
        return [...out, ...this.take(held).events];
    }

    /**
     * Events of a notification. Before the first page they are held. Returns
     * the events to print and, when some are missing, the seq to fetch from.
     */
    push(events: readonly Event[]): { events: Event[]; gapFrom?: number } {
        if (!this.ready) {
            this.held.push(...events);
            return { events: [] };
        }
        return this.take(events);
    }

    private take(events: readonly Event[]): { events: Event[]; gapFrom?: number } {
        const out: Event[] = [];
        for (const e of [...events].sort((a, b) => a.seq - b.seq)) {
            if (e.seq < this.next) continue;
            if (e.seq > this.next) return { events: out, gapFrom: this.next };
            out.push(e);
            this.next = e.seq + 1;
        }
        return { events: out };
    }
}
