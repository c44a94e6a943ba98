// Pure: what the daemon's work-done progress of agents being prepared
// (docs/protocol.md §3.6) shows, and when it goes away. No `vscode` import:
// unit-tested with fake displays.
//
// - While an agent is queued (waiting for a free slot, or a pipeline step
//   waiting for its predecessor to succeed) it is shown in the status bar
//   only: a notification would sit there for the predecessor's whole run.
// - Once its worktree is prepared it gets a notification, which the user can
//   cancel (the agent is cancelled). The variants of one fan-out share one
//   notification.
// - A display ends when the daemon says so (`end`), and also when a snapshot
//   shows the agent out of queued/provisioning or gone, and after a
//   reconnect (the new session does not continue the old progress).

/** A progress display: a status bar entry or a notification. */
export interface PrepDisplay {
    report(message: string): void;
    end(): void;
}

/** Makes the displays (ctx binds them to vscode.window.withProgress). */
export interface PrepUI {
    /** The queued phase: the status bar. */
    queued(title: string, message: string): PrepDisplay;
    /** Preparing the worktree: a notification; onCancel runs when the user cancels it. */
    preparing(title: string, onCancel: () => void): PrepDisplay;
}

/** What is known of the agent behind a token. */
export interface PrepAgent {
    id: string;
    name: string;
    task: string;
    state: string;
    group?: string;
}

/** The token's agent id ("bgagents-<id>"), or undefined for another token. */
export function prepAgentId(token: string): string | undefined {
    return token.startsWith(PREP_PREFIX) ? token.slice(PREP_PREFIX.length) : undefined;
}

export const PREP_PREFIX = "bgagents-";

/** Whether a progress message belongs to the queued phase ("queued", "queued: waiting for DEP to succeed"). */
export function isQueuedMessage(message: string | undefined): boolean {
    return message === undefined || message === "" || message === "queued" || message.startsWith("queued:");
}

interface Entry {
    id: string;
    name: string;
    title: string;
    key: string;
    status: PrepDisplay | undefined;
    /** In a notification (the queued phase is over). */
    preparing: boolean;
}

interface Note {
    display: PrepDisplay;
    tokens: Set<string>;
}

export class Preparations {
    private readonly entries = new Map<string, Entry>();
    private readonly notes = new Map<string, Note>();

    constructor(
        private readonly ui: PrepUI,
        private readonly lookup: (id: string) => PrepAgent | undefined,
        /** Asks the daemon to cancel the agent of a token. */
        private readonly cancel: (token: string) => void,
    ) {}

    /** Tokens whose display is up (for tests). */
    active(): string[] {
        return [...this.entries.keys()];
    }

    begin(token: string, title: string, message: string | undefined): void {
        const id = prepAgentId(token);
        if (id === undefined || this.entries.has(token)) return;
        const a = this.lookup(id);
        if (a !== undefined && !isPreparing(a.state)) return;
        const group = a?.group !== undefined && a.group !== "" ? a.group : undefined;
        const name = a?.name ?? title.replace(/^bgagents: preparing /, "");
        const e: Entry = { id, name, title, key: group !== undefined ? `group:${group}` : token, status: undefined, preparing: false };
        this.entries.set(token, e);
        this.step(token, e, message);
    }

    report(token: string, message: string | undefined): void {
        const e = this.entries.get(token);
        if (e === undefined || message === undefined) return;
        this.step(token, e, message);
    }

    end(token: string): void {
        const e = this.entries.get(token);
        if (e === undefined) return;
        this.entries.delete(token);
        e.status?.end();
        const note = this.notes.get(e.key);
        if (note === undefined || !note.tokens.delete(token)) return;
        if (note.tokens.size === 0) {
            this.notes.delete(e.key);
            note.display.end();
        }
    }

    /** A new snapshot: an agent out of queued/provisioning needs no display. */
    onAgent(agent: { id: string; state: string }): void {
        if (!isPreparing(agent.state)) this.end(PREP_PREFIX + agent.id);
    }

    /** After a new list: agents that are gone or no longer prepared end. */
    retain(known: (id: string) => { state: string } | undefined): void {
        for (const [token, e] of [...this.entries]) {
            const a = known(e.id);
            if (a === undefined || !isPreparing(a.state)) this.end(token);
        }
    }

    /** The session ended (reconnect, stop): its progress will not continue. */
    endAll(): void {
        for (const token of [...this.entries.keys()]) this.end(token);
    }

    private step(token: string, e: Entry, message: string | undefined): void {
        if (isQueuedMessage(message) && !e.preparing) {
            const text = message !== undefined && message !== "" ? message : "queued";
            if (e.status === undefined) e.status = this.ui.queued(`bgagents: ${e.name}`, text);
            else e.status.report(text);
            return;
        }
        if (!e.preparing) {
            e.preparing = true;
            e.status?.end();
            e.status = undefined;
            let note = this.notes.get(e.key);
            if (note === undefined) {
                const key = e.key;
                const title = key.startsWith("group:") ? `bgagents: preparing variants of “${firstLine(this.lookup(e.id)?.task ?? e.name, 60)}”` : e.title;
                note = { tokens: new Set(), display: this.ui.preparing(title, () => this.cancelNote(key)) };
                this.notes.set(key, note);
            }
            note.tokens.add(token);
        }
        const note = this.notes.get(e.key);
        if (note === undefined || message === undefined) return;
        note.display.report(e.key.startsWith("group:") ? `${e.name}: ${message}` : message);
    }

    private cancelNote(key: string): void {
        const note = this.notes.get(key);
        if (note === undefined) return;
        for (const token of note.tokens) this.cancel(token);
    }
}

function isPreparing(state: string): boolean {
    return state === "queued" || state === "provisioning";
}

function firstLine(s: string, max: number): string {
    const line = s.split("\n", 1)[0] ?? "";
    return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}
