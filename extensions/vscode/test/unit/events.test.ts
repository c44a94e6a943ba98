import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { EventCursor, formatEvent } from "../../src/events";
import type { Event } from "../../src/lsp_ext";

const utc = (d: Date): string => d.toISOString().slice(11, 19);
const ev = (seq: number, over: Partial<Event> = {}): Event => ({ seq, time: "2026-11-21T16:00:07.3Z", kind: "output", stream: "stdout", text: `line ${seq}`, ...over });

suite("formatEvent", () => {
    test("each kind reads as a line", () => {
        const cases: [Partial<Event>, string][] = [
            [{ kind: "output", stream: "stdout", text: "working on: x\n" }, "16:00:07   working on: x"],
            [{ kind: "output", stream: "stderr", text: "warning" }, "16:00:07 ! warning"],
            [{ kind: "state", state: "running", text: "agent started" }, "16:00:07 ● running — agent started"],
            [{ kind: "state", state: "needs_input", text: "asked" }, "16:00:07 ● needs input — asked"],
            [{ kind: "tool_call", tool: "Bash", command: "go test ./...", text: "" }, "16:00:07 ⚙ Bash: go test ./..."],
            [{ kind: "tool_call", tool: "Edit", path: "calc.go", text: "" }, "16:00:07 ⚙ Edit: calc.go"],
            [{ kind: "tool_result", status: "ok", text: "" }, "16:00:07   ↳ ok"],
            [{ kind: "tool_result", isError: true, text: "exit 1" }, "16:00:07   ↳ error: exit 1"],
            [{ kind: "text", text: "I will fix it" }, "16:00:07 » I will fix it"],
            [{ kind: "question", text: "May I?", tool: "Bash" }, "16:00:07 ? May I? (Bash)"],
            [{ kind: "result", text: "done" }, "16:00:07 ✔ result: done"],
            [{ kind: "result", text: "no", isError: true, errorKind: "api_error" }, "16:00:07 ✘ result (api_error): no"],
            [{ kind: "message", text: "now add tests" }, "16:00:07 ✉ you: now add tests"],
            [{ kind: "stall", text: "no output for 10m0s" }, "16:00:07 … no output for 10m0s"],
            [{ kind: "progress", text: "copying .env" }, "16:00:07 … copying .env"],
            [{ kind: "usage", text: "", usage: { inputTokens: 900, outputTokens: 100, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: 0.05 }, turns: 2 }, "16:00:07   usage: 1.0k tokens, $0.05, 2 turns"],
        ];
        for (const [over, want] of cases) {
            const e = { seq: 1, time: "2026-11-21T16:00:07.3Z", ...over } as Event;
            assert.equal(formatEvent(e, utc), want, JSON.stringify(over));
        }
    });

    test("multi-line text is indented under its time", () => {
        assert.equal(formatEvent(ev(1, { kind: "text", text: "a\nb" }), utc), "16:00:07 » a\n           b");
    });

    test("usage without numbers prints nothing", () => {
        assert.equal(formatEvent(ev(1, { kind: "usage", text: "" }), utc), "");
    });
});

suite("EventCursor", () => {
    const seqs = (r: { events: Event[] }): number[] => r.events.map((e) => e.seq);

    test("notifications before the first page are held, duplicates dropped", () => {
        const c = new EventCursor();
        assert.deepEqual(seqs(c.push([ev(3), ev(4)])), []);
        const printed = c.page([ev(1), ev(2), ev(3)], 4);
        assert.deepEqual(seqs(printed), [1, 2, 3, 4]);
        assert.equal(printed.gapFrom, undefined);
        assert.equal(c.next, 5);
        assert.deepEqual(seqs(c.push([ev(4), ev(5)])), [5]);
    });

    test("a notification beyond the first page is kept, and the gap is fetched from the next expected seq", () => {
        // The reply to the first page (events 1-2) comes after the
        // notification of event 5; events 3-4 were streamed before it and
        // dropped (a full queue). Nothing may be lost.
        const c = new EventCursor();
        assert.deepEqual(seqs(c.push([ev(5)])), []);
        const first = c.page([ev(1), ev(2)], 3);
        assert.deepEqual(seqs(first), [1, 2]);
        assert.equal(first.gapFrom, 3, "fetch from the next expected seq");
        // Meanwhile event 6 streams in: held as well.
        const more = c.push([ev(6)]);
        assert.deepEqual(seqs(more), []);
        assert.equal(more.gapFrom, 3);
        const filled = c.page([ev(3), ev(4), ev(5)], 6);
        assert.deepEqual(seqs(filled), [3, 4, 5, 6]);
        assert.equal(filled.gapFrom, undefined);
        assert.equal(c.next, 7);
    });

    test("a gap in the stream asks for a fetch from the missing seq", () => {
        const c = new EventCursor();
        c.page([ev(1)], 2);
        const r = c.push([ev(4)]);
        assert.deepEqual(r.events, []);
        assert.equal(r.gapFrom, 2);
        assert.deepEqual(seqs(c.push([ev(5)])), []);
        assert.deepEqual(seqs(c.page([ev(2), ev(3), ev(4)], 5)), [2, 3, 4, 5]);
        assert.equal(c.hasGap(), false);
    });

    test("an empty page moves the cursor to next", () => {
        const c = new EventCursor();
        c.page([], 7);
        assert.equal(c.next, 7);
    });
});
