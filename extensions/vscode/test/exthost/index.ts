// Extension-host tests: run INSIDE a real VS Code (code-server), loaded from
// the source folder through the URL payload (extensionDevelopmentPath +
// extensionTestsPath; see test/run.js). They drive the extension's commands
// against the real daemon and a scripted agent, and wait on the extension's
// own events with deadlines, never on sleeps.
//
// test/run.js opens three windows, one after the other; the window's folder
// picks the suite:
//   main     BGAGENTS_TEST_REPO itself: every command, the tree, diffs,
//            logs, notifications, a daemon restart
//   norepo   a folder that is no repository and contains none: nothing is
//            started until a command needs the daemon; nothing is shown or
//            announced
//   nested   the folder that contains BGAGENTS_TEST_REPO: its agents are
//            shown, and the daemon is connected without a command
//
// Environment (set by vscode_test.go and run.js, inherited through code-server):
//   BGAGENTS_TEST_REPO   a git repository whose default agent is test/agent.sh
//   BGAGENTS_TEST_BIN    the bgagents binary (for the CLI as a second client)
//   BGAGENTS_TEST_GATES  a directory for files the agent waits on
//   BGAGENTS_TEST_RESULTS  a directory: each suite writes SUITE.txt there

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as vscode from "vscode";

import type { Ctx } from "../../src/ctx";
import type { Api } from "../../src/main";
import { reviewerChoices } from "../../src/choices";
import type { Agent, AgentResult, SendToAgentArgs, State } from "../../src/lsp_ext";
import type { Node } from "../../src/tree";

const REPO = env("BGAGENTS_TEST_REPO");
const BIN = env("BGAGENTS_TEST_BIN");
const GATES = env("BGAGENTS_TEST_GATES");
const RESULTS = process.env["BGAGENTS_TEST_RESULTS"];

type Suite = "main" | "norepo" | "nested";

function env(name: string): string {
    const v = process.env[name];
    if (v === undefined || v === "") throw new Error(`${name} is not set`);
    return v;
}

/** Resolves when now() returns something, checked first and then on each `event`; rejects after ms. */
function waitFor<T>(what: string, ms: number, now: () => T | undefined, event: vscode.Event<unknown>): Promise<T> {
    return new Promise((resolve, reject) => {
        const first = now();
        if (first !== undefined) {
            resolve(first);
            return;
        }
        const timer = setTimeout(() => {
            sub.dispose();
            reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
        }, ms);
        const sub = event(() => {
            const v = now();
            if (v === undefined) return;
            clearTimeout(timer);
            sub.dispose();
            resolve(v);
        });
    });
}

/** Conflict notifications come as branches move; tests about other notifications leave them out. */
function isConflictNotice(n: object): boolean {
    return "kind" in n && (n as { kind: unknown }).kind === "conflict";
}

/** An event that fires when any of events does. */
function anyOf(...events: vscode.Event<unknown>[]): vscode.Event<unknown> {
    return (listener) => {
        const subs = events.map((e) => e(listener));
        return { dispose: () => subs.forEach((s) => s.dispose()) };
    };
}

function exec(cmd: string, args: string[], cwd: string): Promise<string> {
    return new Promise((resolve, reject) =>
        execFile(cmd, args, { cwd }, (err, stdout, stderr) =>
            err !== null ? reject(new Error(`${path.basename(cmd)} ${args.join(" ")}: ${err.message} ${stderr}`)) : resolve(stdout),
        ),
    );
}

const cli = (args: string[]): Promise<string> => exec(BIN, args, REPO);
const git = (args: string[]): Promise<string> => exec("git", args, REPO);

class Runner {
    private passed = 0;
    private failed = 0;
    private readonly lines: string[] = [];

    constructor(readonly suite: Suite) {}

    report(line: string): void {
        console.log(`[ext-test] ${this.suite}: ${line}`);
        this.lines.push(line);
        if (RESULTS !== undefined) fs.appendFileSync(path.join(RESULTS, `${this.suite}.txt`), line + "\n");
    }

    async test(name: string, fn: () => Promise<void>): Promise<void> {
        const t = Date.now();
        try {
            await fn();
            this.passed++;
            this.report(`ok   ${name} (${Date.now() - t} ms)`);
        } catch (e) {
            this.failed++;
            const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
            // All of it: assertion messages and the stack say what differed and where.
            this.report(`FAIL ${name} (after ${Date.now() - t} ms): ${msg.split("\n").join("\n     ")}`);
        }
    }

    finish(): void {
        this.report(`${this.passed} passed, ${this.failed} failed`);
        if (this.failed > 0) throw new Error(`${this.failed} extension-host test(s) failed`);
    }
}

/** The extension, activated by the first test of each suite. */
class Harness {
    api: Api | undefined;

    ctx(): Ctx {
        if (this.api === undefined) throw new Error("extension not activated");
        return this.api.ctx;
    }

    agentNamed(name: string): Agent | undefined {
        return this.api?.agents().find((a) => a.name === name && a.repo === REPO);
    }

    /** Waits until agent `name` is in one of the states. */
    waitState(name: string, states: State[], ms = 20_000): Promise<Agent> {
        return waitFor(
            `agent ${name} in ${states.join("/")}`,
            ms,
            () => {
                const a = this.agentNamed(name);
                return a !== undefined && states.includes(a.state) ? a : undefined;
            },
            this.ctx().store.onDidChange,
        );
    }

    /** Names of the agents the sidebar shows, in its order. */
    shown(): string[] {
        return this.ctx()
            .store.tree()
            .flatMap((g) => g.agents.map((a) => a.name));
    }

    async spawn(opts: { task: string; name: string; agent?: string }): Promise<Agent> {
        const spawned = (await vscode.commands.executeCommand("bgagents.spawn", opts)) as Agent | undefined;
        assert.ok(spawned, `spawn ${opts.name} returned nothing (see the error notification)`);
        assert.equal(spawned.name, opts.name);
        return spawned;
    }
}

export async function run(): Promise<void> {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
    const suite: Suite = folder === REPO ? "main" : folder === path.dirname(REPO) ? "nested" : "norepo";
    const r = new Runner(suite);
    const h = new Harness();
    const extension = vscode.extensions.getExtension<Api>("bgagents.bgagents");
    await r.test("the extension activates and registers every contributed command", async () => {
        assert.ok(extension, "extension bgagents.bgagents not found");
        h.api = await extension.activate();
        const contributed = (extension.packageJSON as { contributes: { commands: { command: string }[] } }).contributes.commands.map((c) => c.command);
        const registered = new Set(await vscode.commands.getCommands(true));
        for (const c of contributed) assert.ok(registered.has(c), `command ${c} is not registered`);
    });
    switch (suite) {
        case "main":
            await mainSuite(r, h);
            await landingTests(r, h);
            break;
        case "norepo":
            await noRepoSuite(r, h);
            break;
        case "nested":
            await nestedSuite(r, h);
            break;
    }
    r.finish();
}

async function mainSuite(r: Runner, h: Harness): Promise<void> {
    const ctx = () => h.ctx();

    await r.test("connects to the daemon through `bgagents lsp` by itself (the window has a repository)", async () => {
        await waitFor("the client to start", 20_000, () => ctx().client(), ctx().onDidStart);
        await ctx().ready;
        assert.deepEqual(ctx().store.getRoots(), [REPO]);
        assert.ok(ctx().daemon()?.pid, "bgagents/hello was answered");
        assert.ok(ctx().statusBarShown());
        const registered = new Set(await vscode.commands.getCommands(true));
        assert.ok(registered.has("bgagents.sendToAgent"), "the server's command bgagents.sendToAgent is not registered by the client");
    });

    let first: Agent | undefined;
    await r.test("bgagents.spawn with a task: the agent runs, finishes and is announced with Show Diff, Open Worktree, Merge", async () => {
        const notices: string[][] = [];
        const sub = ctx().onDidShowNotice((n) => {
            if (n.agent.name === "ext-first" && !isConflictNotice(n.notice)) notices.push(n.notice.actions);
        });
        try {
            await h.spawn({ task: "Fix add in calc.go", name: "ext-first" });
            first = await h.waitState("ext-first", ["succeeded", "failed"]);
            assert.equal(first.state, "succeeded", first.error);
            assert.equal(first.diff.files, 2);
            await waitFor("the notification", 5000, () => (notices.length > 0 ? notices : undefined), ctx().onDidShowNotice);
            assert.deepEqual(notices, [["Show Diff", "Open Worktree", "Merge"]]);
        } finally {
            sub.dispose();
        }
    });

    await r.test("a failed agent is announced as an error with Show Log, Reply, Open Worktree", async () => {
        const notices: { severity: string; message: string; actions: string[] }[] = [];
        const sub = ctx().onDidShowNotice((n) => {
            if (n.agent.name === "ext-fail" && !isConflictNotice(n.notice)) notices.push(n.notice);
        });
        try {
            await h.spawn({ task: "Try and FAIL", name: "ext-fail" });
            const failed = await h.waitState("ext-fail", ["failed", "succeeded"]);
            assert.equal(failed.state, "failed");
            await waitFor("the notification", 5000, () => (notices.length > 0 ? notices : undefined), ctx().onDidShowNotice);
            assert.equal(notices[0]!.severity, "error");
            assert.match(notices[0]!.message, /^Agent ext-fail failed: agent exited with code 1/);
            assert.deepEqual(notices[0]!.actions, ["Show Log", "Reply", "Open Worktree"]);
            const discarded = (await vscode.commands.executeCommand("bgagents.discard", failed.id, { confirm: false, force: true })) as Agent | undefined;
            assert.equal(discarded?.state, "discarded");
        } finally {
            sub.dispose();
        }
    });

    await r.test("the tree shows the agent with branch and diffstat, and its changed files", async () => {
        // ext-fail wrote NOTES.md too: their conflict goes once the daemon has seen the discard.
        await waitFor("ext-first without conflicts", 10_000, () => ((h.agentNamed("ext-first")?.conflicts ?? []).length === 0 ? true : undefined), ctx().store.onDidChange);
        const tree = ctx().tree;
        const roots = (await tree.getChildren()) ?? [];
        const node = roots.find((n) => n.kind === "agent" && ctx().store.get(n.id)?.name === "ext-first");
        assert.ok(node, "no tree node for ext-first");
        const item = tree.getTreeItem(node);
        assert.equal(item.label, "ext-first");
        assert.match(String(item.description), /^bgagents\/ext-first · \w+ · 2 files \+2 −1$/);
        assert.match(String(item.contextValue), /\bmerge\b/);
        assert.equal((item.iconPath as vscode.ThemeIcon).id, "pass");
        const files = ((await tree.getChildren(node)) ?? []).flatMap((n) => (n.kind === "file" ? [n.file.path] : []));
        assert.deepEqual(files.sort(), ["NOTES.md", "calc.go"]);
    });

    await r.test("bgagents.showDiff opens the changed files against the base", async () => {
        await vscode.commands.executeCommand("workbench.action.closeAllEditors");
        await vscode.commands.executeCommand("bgagents.showDiff", first!.id);
        const pairs = await diffPairs();
        const calc = pairs.find((p) => p.modified.path.endsWith("/calc.go"));
        assert.ok(calc, `no calc.go among ${pairs.map((p) => p.modified.toString()).join(", ")}`);
        assert.equal(calc.original.scheme, "bgagents-git");
        const base = await vscode.workspace.openTextDocument(calc.original);
        const mine = await vscode.workspace.openTextDocument(calc.modified);
        assert.match(base.getText(), /return a - b/);
        assert.match(mine.getText(), /return a \+ b/);
        const notes = pairs.find((p) => p.modified.path.endsWith("/NOTES.md"));
        assert.ok(notes);
        assert.equal((await vscode.workspace.openTextDocument(notes.original)).getText(), "", "an added file has an empty base");
    });

    await r.test("bgagents.openFileDiff opens one file's diff from the tree", async () => {
        const file = { kind: "file", agentId: first!.id, file: { path: "calc.go", status: "M", additions: 1, deletions: 1 } };
        await vscode.commands.executeCommand("bgagents.openFileDiff", file);
        const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
        assert.ok(tab?.input instanceof vscode.TabInputTextDiff, `active tab: ${tab?.label}`);
        assert.match(tab.label, /^calc\.go \(\w{7} ↔ bgagents\/ext-first\)$/);
    });

    const logLines = (id: string): readonly string[] => ctx().logs.recentLines(id) ?? [];
    const logEvents = () => anyOf(ctx().logs.onDidAppend, ctx().logs.onDidChangeFollowing, ctx().store.onDidChange);

    await r.test("bgagents.showLog prints an ended agent's activity as readable lines, without following it", async () => {
        await vscode.commands.executeCommand("bgagents.showLog", first!.id);
        await waitFor("log lines", 10_000, () => (logLines(first!.id).some((x) => x.includes("● succeeded")) ? true : undefined), logEvents());
        const text = logLines(first!.id).join("\n");
        assert.match(text, /^\d\d:\d\d:\d\d ● running — agent started$/m);
        assert.match(text, /^\d\d:\d\d:\d\d   working on: Fix add in calc\.go$/m);
        assert.match(text, /● succeeded — agent exited 0/);
        assert.equal(ctx().logs.isFollowing(first!.id), false, "an ended agent's log is read, not followed");
    });

    await r.test("bgagents.followUp runs the agent again in the same worktree; the open log follows the new run, then unfollows", async () => {
        const res = (await vscode.commands.executeCommand("bgagents.followUp", first!.id, "Also document it")) as Agent | undefined;
        assert.ok(res, "followUp returned nothing");
        const done = await h.waitState("ext-first", ["succeeded", "failed"]);
        assert.equal(done.runs, 2);
        assert.equal(done.diff.commits, 2);
        await waitFor(
            "the follow-up in the log, and the log unfollowed",
            10_000,
            () => (logLines(first!.id).filter((x) => x.includes("● succeeded")).length >= 2 && !ctx().logs.isFollowing(first!.id) ? true : undefined),
            logEvents(),
        );
        const lines = logLines(first!.id);
        assert.match(lines.join("\n"), /✉ you: Also document it/);
        assert.equal(lines.filter((x) => x.includes("● succeeded")).length, 2, lines.join("\n"));
        assert.equal(lines.filter((x) => x.includes("✉ you: Also document it")).length, 1, "each line once");
    });

    await r.test("Show Log follows a live agent; another agent's log replaces it and unfollows it; it unfollows once the agent ended and its log is read", async () => {
        const gate = path.join(GATES, "ext-log");
        const spawned = await h.spawn({ task: `Print a log WAIT ${gate}`, name: "ext-log" });
        await vscode.commands.executeCommand("bgagents.showLog", spawned.id);
        await waitFor(
            "ext-log followed and waiting",
            15_000,
            () => (ctx().logs.isFollowing(spawned.id) && logLines(spawned.id).some((l) => l.includes("waiting for")) ? true : undefined),
            logEvents(),
        );
        // Another agent's log replaces it.
        await vscode.commands.executeCommand("bgagents.showLog", first!.id);
        assert.equal(ctx().logs.shownAgent(), first!.id);
        assert.equal(ctx().logs.isFollowing(spawned.id), false);
        assert.equal(ctx().logs.recentLines(spawned.id), undefined);
        // Shown again: read from the start and followed again.
        await vscode.commands.executeCommand("bgagents.showLog", spawned.id);
        assert.ok(ctx().logs.isFollowing(spawned.id));
        assert.ok(logLines(spawned.id).some((l) => l.includes("waiting for")));
        fs.writeFileSync(gate, "");
        await waitFor(
            "ext-log ended, its log read to the end and unfollowed",
            15_000,
            () => (!ctx().logs.isFollowing(spawned.id) && logLines(spawned.id).some((l) => l.includes("● succeeded")) ? true : undefined),
            logEvents(),
        );
        const lines = logLines(spawned.id);
        for (const want of ["waiting for", "wrote NOTES.md", "done", "● succeeded"]) {
            assert.equal(lines.filter((l) => l.includes(want)).length, 1, `"${want}" once in:\n${lines.join("\n")}`);
        }
        assert.equal(h.agentNamed("ext-log")?.state, "succeeded");
    });

    await r.test("the status bar counts running agents; bgagents.cancel stops one", async () => {
        const gate = path.join(GATES, "never");
        const spawned = await h.spawn({ task: `Slow work WAIT ${gate}`, name: "ext-slow" });
        await h.waitState("ext-slow", ["running"]);
        assert.equal(ctx().statusBarText(), "$(sync~spin) 1");
        // Cancel once the agent itself runs (its log says so): a cancel in the
        // first milliseconds of `running` can lose the agent (see the report).
        await vscode.commands.executeCommand("bgagents.showLog", spawned.id);
        await waitFor(
            "the agent's first output",
            10_000,
            () => (logLines(spawned.id).some((l) => l.includes("waiting for")) ? true : undefined),
            ctx().logs.onDidAppend,
        );
        const cancelled = (await vscode.commands.executeCommand("bgagents.cancel", spawned.id, { confirm: false })) as Agent | undefined;
        assert.equal(cancelled?.state, "cancelled");
        await waitFor("status bar back to 0", 5000, () => (ctx().statusBarText() === "$(robot) 0" ? true : undefined), ctx().store.onDidChange);
    });

    await r.test("bgagents.merge lands the branch in main and removes the agent from the tree", async () => {
        const merged = (await vscode.commands.executeCommand("bgagents.merge", first!.id, { confirm: false })) as Agent | undefined;
        assert.equal(merged?.state, "merged");
        assert.match(fs.readFileSync(path.join(REPO, "calc.go"), "utf8"), /return a \+ b/);
        assert.ok(!fs.existsSync(first!.worktree), "worktree still exists after merge");
        assert.ok(!h.shown().includes("ext-first"), `still shown: ${h.shown().join(", ")}`);
    });

    await r.test("bgagents.discard refuses to lose uncommitted work without force (worktree, branch and record stay); with force both are gone", async () => {
        await h.spawn({ task: "Write notes to discard", name: "ext-discard" });
        const done = await h.waitState("ext-discard", ["succeeded"]);
        // Work of your own in the agent's worktree, not committed.
        const notes = path.join(done.worktree, "NOTES.md");
        fs.appendFileSync(notes, "my own edit\n");
        const failures: string[] = [];
        const sub = ctx().onDidFailCommand((f) => {
            if (f.command === "discard") failures.push(f.message);
        });
        let refused: unknown;
        try {
            refused = await vscode.commands.executeCommand("bgagents.discard", done.id, { confirm: false });
        } finally {
            sub.dispose();
        }
        assert.equal(refused, undefined);
        assert.equal(failures.length, 1, failures.join("\n"));
        assert.match(failures[0]!, /^agent ext-discard has uncommitted changes in .*ext-discard \(\[?NOTES\.md\]?\); merge them, or discard with --force/);
        assert.equal(h.agentNamed("ext-discard")?.state, "succeeded");
        assert.ok(h.shown().includes("ext-discard"));
        const record = JSON.parse(await cli(["show", "--json", done.id])) as Agent;
        assert.equal(record.state, "succeeded", "the daemon still has it");
        assert.match(fs.readFileSync(notes, "utf8"), /my own edit/, "the uncommitted edit is still in the worktree");
        assert.equal((await git(["branch", "--list", "--format=%(refname:short)", done.branch])).trim(), done.branch);

        const discarded = (await vscode.commands.executeCommand("bgagents.discard", done.id, { confirm: false, force: true })) as Agent | undefined;
        assert.equal(discarded?.state, "discarded");
        assert.ok(!fs.existsSync(done.worktree), "worktree still exists after discard");
        assert.equal((await git(["branch", "--list", "--format=%(refname:short)", done.branch])).trim(), "", "branch still exists after discard");
        assert.ok(!h.shown().includes("ext-discard"));
        // The cancelled agent changed nothing: discarded without force.
        const slow = h.agentNamed("ext-slow");
        assert.ok(slow);
        const again = (await vscode.commands.executeCommand("bgagents.discard", slow.id, { confirm: false })) as Agent | undefined;
        assert.equal(again?.state, "discarded");
        const log = h.agentNamed("ext-log");
        assert.ok(log);
        assert.equal(((await vscode.commands.executeCommand("bgagents.discard", log.id, { confirm: false, force: true })) as Agent | undefined)?.state, "discarded");
        assert.deepEqual(ctx().store.tree(), []);
    });

    await r.test("bgagents.sendSelection sends the selection as context", async () => {
        const doc = await vscode.workspace.openTextDocument(path.join(REPO, "calc.go"));
        const editor = await vscode.window.showTextDocument(doc);
        editor.selection = new vscode.Selection(3, 0, 5, 1);
        const spawned = (await vscode.commands.executeCommand("bgagents.sendSelection", { task: "Explain this function", name: "ext-selection" })) as Agent | undefined;
        assert.ok(spawned, "sendSelection returned nothing");
        assert.equal(spawned.context?.file, "calc.go");
        assert.equal(spawned.context?.startLine, 4);
        assert.equal(spawned.context?.endLine, 6);
        assert.match(spawned.context?.text ?? "", /^func add\(a, b int\) int \{/);
        await h.waitState("ext-selection", ["succeeded"]);
    });

    await r.test("the daemon's code action is offered for a selection", async () => {
        const uri = vscode.Uri.file(path.join(REPO, "calc.go"));
        const actions = (await vscode.commands.executeCommand("vscode.executeCodeActionProvider", uri, new vscode.Range(3, 0, 5, 1))) as vscode.CodeAction[];
        const send = actions.find((a) => a.title === "Send to background agent");
        assert.ok(send, `actions: ${actions.map((a) => a.title).join(", ")}`);
        assert.equal(send.command?.command, "bgagents.sendToAgent");
        assert.equal(send.kind?.value, "refactor.bgagents");
    });

    await r.test("no document is synced to the daemon; the code action sends the editor's (unsaved) text of the range", async () => {
        const uri = vscode.Uri.file(path.join(REPO, "calc.go"));
        const doc = await vscode.workspace.openTextDocument(uri);
        const editor = await vscode.window.showTextDocument(doc);
        assert.ok(await editor.edit((e) => e.insert(new vscode.Position(0, 0), "// an unsaved note\n")));
        try {
            assert.ok(doc.isDirty);
            const actions = (await vscode.commands.executeCommand("vscode.executeCodeActionProvider", uri, new vscode.Range(0, 0, 0, 18))) as vscode.CodeAction[];
            const send = actions.find((a) => a.title === "Send to background agent");
            assert.ok(send?.command, `actions: ${actions.map((a) => a.title).join(", ")}`);
            const args = send.command.arguments?.[0] as SendToAgentArgs;
            // The daemon was never sent the document: it cut the range from the file on disk.
            assert.equal(args.text, "package calc");
            const res = (await vscode.commands.executeCommand(send.command.command, { ...args, task: "Look at the note", name: "ext-unsaved" })) as AgentResult | undefined;
            assert.equal(res?.agent?.context?.text, "// an unsaved note", "the editor's text went to the agent");
            assert.equal(res?.agent?.context?.startLine, 1);
            await h.waitState("ext-unsaved", ["succeeded"]);
        } finally {
            await vscode.window.showTextDocument(doc);
            await vscode.commands.executeCommand("workbench.action.files.revert");
        }
        assert.ok(!doc.isDirty);
    });

    await r.test("an agent spawned by another client (the CLI) appears", async () => {
        await cli(["spawn", "--name", "ext-cli", "Notes from the CLI"]);
        const a = await h.waitState("ext-cli", ["succeeded"]);
        assert.ok(ctx().store.tree()[0]?.agents.some((x) => x.id === a.id));
    });

    await r.test("bgagents.refresh lists again: a record the daemon does not have leaves, and the sidebar matches `bgagents ls`", async () => {
        const real = h.agentNamed("ext-cli");
        assert.ok(real);
        // A snapshot the daemon never sent (as if from a daemon that is gone).
        const phantom: Agent = { ...real, id: "0123456789ab", name: "ext-phantom", branch: "bgagents/ext-phantom", state: "running", updatedAt: new Date().toISOString() };
        ctx().agentChanged(phantom);
        assert.ok(h.shown().includes("ext-phantom"));
        assert.equal(ctx().statusBarText(), "$(sync~spin) 1");
        await vscode.commands.executeCommand("bgagents.refresh");
        assert.equal(ctx().store.get(phantom.id), undefined);
        assert.equal(ctx().statusBarText(), "$(robot) 0");
        const listed = (JSON.parse(await cli(["ls", "--json"])) as Agent[]).filter((a) => a.state !== "merged" && a.state !== "discarded");
        assert.deepEqual(h.shown(), listed.map((a) => a.name));
        assert.ok(h.shown().includes("ext-cli"));
    });

    await r.test("while an agent runs, the tree and Show Diff include its uncommitted changes: the agent's side is the file on disk, a deleted file is empty", async () => {
        const gate = path.join(GATES, "ext-hold");
        const spawned = await h.spawn({ task: `Change files DELETE HOLD ${gate}`, name: "ext-hold" });
        await vscode.commands.executeCommand("bgagents.showLog", spawned.id);
        await waitFor("the agent to hold", 15_000, () => (logLines(spawned.id).some((l) => l.includes("holding until")) ? true : undefined), logEvents());
        const running = h.agentNamed("ext-hold");
        assert.equal(running?.state, "running");
        assert.equal(running.diff.files, 0, "nothing committed yet");
        // The tree lists the worktree's files, and asks again each time while the agent runs.
        const tree = ctx().tree;
        const node = tree.agentNode(spawned.id);
        assert.equal(tree.getTreeItem(node).collapsibleState, vscode.TreeItemCollapsibleState.Collapsed);
        const files = async () =>
            ((await tree.getChildren(node)) ?? [])
                .flatMap((n) => (n.kind === "file" ? [`${n.file.status} ${n.file.path}`] : []))
                .sort();
        assert.deepEqual(await files(), ["D README.md", "M NOTES.md"]);
        fs.writeFileSync(path.join(spawned.worktree, "extra.txt"), "an untracked file\n");
        // Listed again after a few seconds (each listing snapshots the worktree), or at once on Refresh.
        await vscode.commands.executeCommand("bgagents.refresh");
        assert.deepEqual(await files(), ["A extra.txt", "D README.md", "M NOTES.md"]);

        await vscode.commands.executeCommand("workbench.action.closeAllEditors");
        await vscode.commands.executeCommand("bgagents.showDiff", spawned.id);
        const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
        assert.match(tab?.label ?? "", /^ext-hold: \+\d+ −\d+ \(bgagents\/ext-hold, uncommitted\)/);
        const pairs = await diffPairs();
        const notes = pairs.find((p) => p.modified.path.endsWith("/NOTES.md"));
        assert.ok(notes);
        assert.equal(notes.modified.scheme, "file");
        assert.equal(notes.modified.fsPath, path.join(spawned.worktree, "NOTES.md"));
        assert.match((await vscode.workspace.openTextDocument(notes.modified)).getText(), /Change files DELETE HOLD/);
        const readme = pairs.find((p) => p.original.path.endsWith("/README.md"));
        assert.ok(readme);
        assert.equal((await vscode.workspace.openTextDocument(readme.modified)).getText(), "", "a deleted file's side is empty");
        assert.match((await vscode.workspace.openTextDocument(readme.original)).getText(), /^# calc/);
        const extra = pairs.find((p) => p.modified.path.endsWith("/extra.txt"));
        assert.equal(extra?.modified.scheme, "file");

        // Once it ended, everything is committed: the diff is the branch's.
        fs.writeFileSync(gate, "");
        const done = await h.waitState("ext-hold", ["succeeded"]);
        assert.equal(done.diff.files, 3);
        await vscode.commands.executeCommand("workbench.action.closeAllEditors");
        await vscode.commands.executeCommand("bgagents.showDiff", spawned.id);
        assert.match(vscode.window.tabGroups.activeTabGroup.activeTab?.label ?? "", /^ext-hold: \+\d+ −\d+ \(bgagents\/ext-hold\)/);
        assert.deepEqual(await files(), ["A extra.txt", "D README.md", "M NOTES.md"]);
        await vscode.commands.executeCommand("workbench.action.closeAllEditors");
        assert.equal(((await vscode.commands.executeCommand("bgagents.discard", spawned.id, { confirm: false, force: true })) as Agent | undefined)?.state, "discarded");
    });

    await r.test("an agent that ended while the window was disconnected is announced once when it connects again", async () => {
        const gate = path.join(GATES, "ext-offline");
        const spawned = await h.spawn({ task: `Finish while nobody listens WAIT ${gate}`, name: "ext-offline" });
        await h.waitState("ext-offline", ["running"]);
        const notices: string[] = [];
        const sub = ctx().onDidShowNotice((n) => {
            if (n.agent.name === "ext-offline" && !isConflictNotice(n.notice)) notices.push(n.notice.message);
        });
        try {
            await ctx().stop();
            fs.writeFileSync(gate, "");
            // `logs -f` returns when the agent has ended.
            await cli(["logs", "-f", spawned.id]);
            assert.equal((JSON.parse(await cli(["show", "--json", spawned.id])) as Agent).state, "succeeded");
            assert.equal(h.agentNamed("ext-offline")?.state, "running", "the window missed the end");
            assert.deepEqual(notices, []);
            await vscode.commands.executeCommand("bgagents.restart");
            assert.equal(h.agentNamed("ext-offline")?.state, "succeeded");
            assert.equal(notices.length, 1, notices.join("\n"));
            assert.match(notices[0]!, /^Agent ext-offline finished/);
            // Listing once more announces nothing again.
            await vscode.commands.executeCommand("bgagents.refresh");
            assert.equal(notices.length, 1, notices.join("\n"));
        } finally {
            sub.dispose();
        }
    });

    await r.test("after the daemon restarts, the client reconnects by itself: hello again, the agents listed again, and one that ended meanwhile announced once", async () => {
        const gate = path.join(GATES, "ext-restart");
        await h.spawn({ task: `Work across a restart WAIT ${gate}`, name: "ext-restart" });
        await h.waitState("ext-restart", ["running"]);
        const before = ctx().daemon();
        assert.ok(before);
        const notices: string[] = [];
        const sub = ctx().onDidShowNotice((n) => {
            if (n.agent.name === "ext-restart" && !isConflictNotice(n.notice)) notices.push(n.notice.message);
        });
        try {
            const reconnected = waitFor(
                "a connection to a new daemon",
                30_000,
                () => {
                    const d = ctx().daemon();
                    return d !== undefined && d.pid !== before.pid && ctx().client() !== undefined ? d : undefined;
                },
                ctx().onDidStart,
            );
            await cli(["daemon", "--stop"]);
            // The agent ends while its daemon is gone.
            fs.writeFileSync(gate, "");
            const after = await reconnected;
            assert.notEqual(after.pid, before.pid);
            const done = await h.waitState("ext-restart", ["succeeded", "failed", "lost"], 30_000);
            assert.equal(done.state, "succeeded", done.error);
            await waitFor("the notification", 10_000, () => (notices.length > 0 ? true : undefined), ctx().onDidShowNotice);
            await vscode.commands.executeCommand("bgagents.refresh");
            assert.equal(notices.length, 1, notices.join("\n"));
            assert.match(notices[0]!, /^Agent ext-restart finished/);
        } finally {
            sub.dispose();
        }
    });
}

/**
 * Landing the work: reviews, conflicts, push, pull requests, pipelines,
 * fan-outs and integration, against the real daemon. The reviewer is the
 * agent "asker" (test/agent.sh run as Claude Code's binary, in its
 * read-only mode), which asks for changes with two findings.
 */
async function landingTests(r: Runner, h: Harness): Promise<void> {
    const ctx = () => h.ctx();
    const tree = () => ctx().tree;
    const item = (n: Node) => tree().getTreeItem(n);
    const children = async (n: Node) => (await tree().getChildren(n)) ?? [];
    const failures: { command: string; message: string; code?: number }[] = [];
    const sub = ctx().onDidFailCommand((f) => failures.push(f));
    const failed = async (command: string, run: () => Thenable<unknown>): Promise<{ message: string; code?: number }> => {
        const from = failures.length;
        assert.equal(await run(), undefined, `${command} returned something`);
        const f = failures.slice(from).find((x) => x.command === command);
        assert.ok(f, `no failure of ${command} was reported`);
        return f;
    };

    await r.test("Review: another vendor is offered first; the review shows under the agent with its verdict and findings, is announced once with Show Findings, and its reviewer is no row of its own", async () => {
        const writer = h.agentNamed("ext-cli");
        assert.ok(writer);
        const choices = reviewerChoices(writer, await ctx().agentsOf(REPO));
        assert.equal(choices[0]?.value, "asker", `reviewer choices: ${JSON.stringify(choices)}`);
        const notices: { message: string; actions: string[] }[] = [];
        const sub2 = ctx().onDidShowNotice((n) => {
            if ((n.agent.name === "ext-cli" || n.agent.name === "review-ext-cli") && !isConflictNotice(n.notice)) notices.push({ message: n.notice.message, actions: [...n.notice.actions] });
        });
        try {
            const rev = (await vscode.commands.executeCommand("bgagents.review", writer.id, { agent: "asker" })) as Agent | undefined;
            assert.ok(rev, "review returned nothing");
            assert.equal(rev.name, "review-ext-cli");
            assert.equal(rev.reviewOf, writer.id);
            assert.equal(rev.readOnly, true);
            const reviewed = await waitFor(
                "the verdict on ext-cli",
                30_000,
                () => {
                    const a = h.agentNamed("ext-cli");
                    return a?.reviews?.[0]?.verdict !== undefined ? a : undefined;
                },
                ctx().store.onDidChange,
            );
            await waitFor("the announcement", 5000, () => (notices.length > 0 ? true : undefined), ctx().onDidShowNotice);
            assert.deepEqual(notices, [
                { message: "Review of ext-cli by review-ext-cli (asker): changes requested, 2 findings — add adds now, but nothing tests it", actions: ["Show Findings", "Reply"] },
            ]);
            assert.ok(!h.shown().includes("review-ext-cli"), "the reviewer is shown under ext-cli, not as an agent");
            const node = tree().agentNode(reviewed.id);
            assert.match(String(item(node).description), / · ✗ changes requested/);
            assert.match(String(item(node).contextValue), /\bfindings\b/);
            const first = (await children(node))[0]!;
            assert.equal(first.kind, "review");
            assert.equal(item(first).label, "Review: changes requested by asker");
            assert.equal(item(first).collapsibleState, vscode.TreeItemCollapsibleState.Expanded);
            assert.match(String(item(first).contextValue), /^bgagentsReview reviewer findings$/);
            const findings = await children(first);
            assert.deepEqual(
                findings.map((f) => [item(f).label, item(f).description]),
                [
                    ["add has no test", "calc.go:5"],
                    ["NOTES.md only repeats the task", "NOTES.md:1"],
                ],
            );
            assert.deepEqual(tree().getParent(findings[0]!), first);

            // Show Findings: problems on the worktree's files.
            const uris = (await vscode.commands.executeCommand("bgagents.showFindings", reviewed.id)) as vscode.Uri[];
            const calc = vscode.Uri.file(path.join(reviewed.worktree, "calc.go"));
            assert.deepEqual(uris.map((u) => u.fsPath).sort(), [path.join(reviewed.worktree, "NOTES.md"), calc.fsPath]);
            const diags = vscode.languages.getDiagnostics(calc).filter((d) => d.source?.startsWith("review by") === true);
            assert.equal(diags.length, 1);
            assert.equal(diags[0]!.message, "add has no test");
            assert.equal(diags[0]!.range.start.line, 4);
            assert.equal(diags[0]!.severity, vscode.DiagnosticSeverity.Warning);

            // A finding opens its file in the worktree at its line.
            const opened = (await vscode.commands.executeCommand("bgagents.openFinding", findings[0])) as string;
            assert.equal(opened, calc.fsPath);
            const editor = vscode.window.activeTextEditor;
            assert.equal(editor?.document.uri.fsPath, calc.fsPath);
            assert.equal(editor.selection.active.line, 4);
            assert.equal(notices.length, 1, "announced once");
            await vscode.commands.executeCommand("workbench.action.closeAllEditors");

            // Reply (the notification's button): the follow-up's input box has the findings on one line.
            const asked: { title: string; value: string }[] = [];
            const sub3 = ctx().onDidAsk((a) => asked.push(a));
            try {
                const reply = ctx().replyToReview(reviewed, reviewed.reviews![0]!);
                const box = await waitFor("the follow-up's input box", 10_000, () => asked[0], ctx().onDidAsk);
                assert.equal(box.title, "Follow-up for agent ext-cli");
                assert.equal(
                    box.value,
                    "Address the review by asker (changes requested): add adds now, but nothing tests it. Findings: calc.go:5: [medium] add has no test; NOTES.md:1: [low] NOTES.md only repeats the task",
                );
                await vscode.commands.executeCommand("workbench.action.closeQuickOpen");
                assert.equal(await reply, undefined, "nothing is sent when the box is closed");
            } finally {
                sub3.dispose();
            }
        } finally {
            sub2.dispose();
        }
    });

    await r.test("conflicts: two agents changing the same line warn on their rows and name each other in a child; merging one makes the other conflict with main, and its merge is refused with the daemon's reason", async () => {
        await h.spawn({ task: "Left side of the line", name: "ext-left" });
        await h.spawn({ task: "Right side of the line", name: "ext-right" });
        await h.waitState("ext-left", ["succeeded"]);
        await h.waitState("ext-right", ["succeeded"]);
        const hasConflict = (name: string, other: string) => {
            const a = h.agentNamed(name);
            return a?.conflicts?.some((c) => c.name === other && (c.files ?? []).includes("NOTES.md")) === true ? a : undefined;
        };
        const left = await waitFor("ext-left to conflict with ext-right", 15_000, () => hasConflict("ext-left", "ext-right"), ctx().store.onDidChange);
        await waitFor("ext-right to conflict with ext-left", 15_000, () => hasConflict("ext-right", "ext-left"), ctx().store.onDidChange);
        const node = tree().agentNode(left.id);
        assert.match(String(item(node).description), / · ⚠ conflicts with /);
        const conflict = (await children(node)).find((c) => c.kind === "conflict" && String(item(c).label) === "Conflicts with ext-right: NOTES.md");
        assert.ok(conflict, `children: ${(await children(node)).map((c) => String(item(c).label)).join(" | ")}`);
        assert.equal((item(conflict).iconPath as vscode.ThemeIcon).id, "warning");
        assert.equal(item(conflict).contextValue, "bgagentsConflict integrate");

        const merged = (await vscode.commands.executeCommand("bgagents.merge", left.id, { confirm: false })) as Agent | undefined;
        assert.equal(merged?.state, "merged");
        const right = await waitFor(
            "ext-right to conflict with main",
            15_000,
            () => {
                const a = h.agentNamed("ext-right");
                return a?.conflicts?.some((c) => c.base === "main") === true ? a : undefined;
            },
            ctx().store.onDidChange,
        );
        assert.match(String(item(tree().agentNode(right.id)).description), /⚠ conflicts with base main/);
        const f = await failed("merge", () => vscode.commands.executeCommand("bgagents.merge", right.id, { confirm: false }));
        assert.equal(f.code, -32044);
        assert.match(f.message, /bgagents\/ext-right into main would conflict in: NOTES\.md/);
        assert.equal(h.agentNamed("ext-right")?.state, "succeeded");
    });

    await r.test("push: an unknown remote is refused with the daemon's message; to a local bare remote the branch lands there and the row says so", async () => {
        const right = h.agentNamed("ext-right");
        assert.ok(right);
        const bad = await failed("push", () => vscode.commands.executeCommand("bgagents.push", right.id, { remote: "nowhere" }));
        assert.equal(bad.code, -32602);
        assert.match(bad.message, /nowhere/);
        const bare = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "bgagents-remote-")), "remote.git");
        await exec("git", ["init", "-q", "--bare", bare], REPO);
        await git(["remote", "add", "origin", bare]);
        const pushed = (await vscode.commands.executeCommand("bgagents.push", right.id, {})) as Agent | undefined;
        assert.equal(pushed?.pushed?.remote, "origin");
        assert.equal(pushed.pushed.branch, "bgagents/ext-right");
        assert.equal((await exec("git", ["--git-dir", bare, "rev-parse", "refs/heads/bgagents/ext-right"], REPO)).trim(), pushed.pushed.commit);
        assert.match(String(item(tree().agentNode(right.id)).description), / · pushed to origin$/);
        assert.match(String((item(tree().agentNode(right.id)).tooltip as vscode.MarkdownString).value), /Pushed to `origin\/bgagents\/ext-right`/);
    });

    await r.test("pull request without a usable gh: the daemon's message (with its remedy) is shown as it is", async () => {
        const right = h.agentNamed("ext-right");
        assert.ok(right);
        const f = await failed("pullRequest", () => vscode.commands.executeCommand("bgagents.pullRequest", right.id, { title: "Keep the right side" }));
        assert.equal(f.code, -32050);
        const gh = (process.env["PATH"] ?? "").split(path.delimiter).some((d) => d !== "" && fs.existsSync(path.join(d, "gh")));
        if (!gh) {
            assert.equal(
                f.message,
                "the GitHub CLI (gh) is not installed, so no pull request can be opened: install it (https://cli.github.com) and run `gh auth login`, or run `bgagents push ext-right` and open the pull request on your forge",
            );
        } else assert.match(f.message, /gh/);
        assert.equal(h.agentNamed("ext-right")?.pullRequest, undefined);
        if (!gh) {
            // Asked interactively: said before any question, from bgagents/agents (push.gh).
            assert.equal((await ctx().agentsOf(REPO))?.push.gh, false);
            const upFront = await failed("pullRequest", () => vscode.commands.executeCommand("bgagents.pullRequest", right.id));
            assert.match(upFront.message, /^The GitHub CLI \(gh\) is not installed where the bgagents daemon runs, so no pull request can be opened for ext-right: install it \(https:\/\/cli\.github\.com\)/);
        }
    });

    await r.test("pull request through gh: the URL is recorded, shown on the row and announced with Open (gh is a stand-in: GitHub is unreachable here)", async () => {
        const right = h.agentNamed("ext-right");
        assert.ok(right);
        // A stand-in gh on the daemon's PATH answering what the daemon asks (server/landing_test.go TestPullRequestThroughGH).
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bgagents-gh-"));
        const calls = path.join(dir, "calls");
        fs.writeFileSync(
            path.join(dir, "gh"),
            `#!/bin/sh\necho "$@" >> ${calls}\nif [ "$1" = auth ]; then exit 0; fi\nif [ "$1" = repo ]; then echo acme; exit 0; fi\ncat > /dev/null\necho https://github.com/acme/app/pull/42\n`,
            { mode: 0o755 },
        );
        const oldPath = process.env["PATH"];
        process.env["PATH"] = `${dir}${path.delimiter}${oldPath ?? ""}`;
        const links: { message: string; url: string }[] = [];
        const sub2 = ctx().onDidShowNotice((n) => {
            if ("kind" in n.notice && n.notice.kind === "link") links.push({ message: n.notice.message, url: n.notice.url });
        });
        try {
            // The daemon gets the PATH of the `bgagents lsp` that starts it: stop it, and the client starts a new one.
            const before = ctx().daemon();
            assert.ok(before);
            const reconnected = waitFor(
                "a connection to a new daemon",
                30_000,
                () => {
                    const d = ctx().daemon();
                    return d !== undefined && d.pid !== before.pid && ctx().client() !== undefined ? d : undefined;
                },
                ctx().onDidStart,
            );
            await cli(["daemon", "--stop"]);
            await reconnected;
            assert.equal((await ctx().agentsOf(REPO))?.push.gh, true);
            const pr = (await vscode.commands.executeCommand("bgagents.pullRequest", right.id, { title: "Keep the right side" })) as Agent | undefined;
            assert.equal(pr?.pullRequest, "https://github.com/acme/app/pull/42");
            assert.equal(h.agentNamed("ext-right")?.pullRequest, "https://github.com/acme/app/pull/42");
            assert.match(fs.readFileSync(calls, "utf8"), /pr create --head bgagents\/ext-right --title Keep the right side/);
            assert.deepEqual(links, [{ message: "Pull request #42 for ext-right: https://github.com/acme/app/pull/42", url: "https://github.com/acme/app/pull/42" }]);
            assert.match(String(item(tree().agentNode(right.id)).description), / · PR #42$/);
        } finally {
            sub2.dispose();
            process.env["PATH"] = oldPath;
        }
    });

    await r.test("pipeline: a step spawned after an agent waits for it (its row says so), then starts on its branch", async () => {
        const gate = path.join(GATES, "ext-dep");
        await h.spawn({ task: `First step WAIT ${gate}`, name: "ext-dep" });
        await h.waitState("ext-dep", ["running"]);
        const step = (await vscode.commands.executeCommand("bgagents.spawn", { task: "Second step", name: "ext-step", after: "ext-dep" })) as Agent | undefined;
        assert.equal(step?.after, h.agentNamed("ext-dep")?.id);
        const queued = await h.waitState("ext-step", ["queued"]);
        assert.match(String(item(tree().agentNode(queued.id)).description), / · waiting for ext-dep$/);
        assert.match(String((item(tree().agentNode(queued.id)).tooltip as vscode.MarkdownString).value), /After ext\\?-dep: waits until it has succeeded/);
        fs.writeFileSync(gate, "");
        const done = await h.waitState("ext-step", ["succeeded", "failed"], 30_000);
        assert.equal(done.state, "succeeded", done.error);
        assert.equal(done.base, "bgagents/ext-dep");
        assert.match(String(item(tree().agentNode(done.id)).description), / · after ext-dep/);
    });

    await r.test("fan-out: two variants are one group node; Integrate Variants on it starts an agent that merges both branches", async () => {
        const first = (await vscode.commands.executeCommand("bgagents.spawn", { task: "Two ways to say it", name: "ext-ways", variants: 2 })) as Agent | undefined;
        assert.ok(first?.group, "spawn returned no variant");
        const v1 = await h.waitState("ext-ways-v1", ["succeeded"]);
        const v2 = await h.waitState("ext-ways-v2", ["succeeded"]);
        const roots = (await tree().getChildren()) ?? [];
        const group = roots.find((n) => n.kind === "group");
        assert.ok(group, "no group node");
        assert.equal(item(group).label, "Two ways to say it — 2 variants");
        assert.equal(item(group).contextValue, "bgagentsGroup integrate");
        assert.deepEqual((await children(group)).map((n) => (n.kind === "agent" ? ctx().store.get(n.id)?.name : n.kind)), ["ext-ways-v1", "ext-ways-v2"]);
        assert.deepEqual(tree().getParent(tree().agentNode(v2.id)), group);
        assert.ok(!roots.some((n) => n.kind === "agent" && (n.id === v1.id || n.id === v2.id)), "variants are under the group only");
        const integration = (await vscode.commands.executeCommand("bgagents.integrateVariants", group, {})) as Agent | undefined;
        assert.equal(integration?.name, "integrate-ext-ways-v1");
        assert.deepEqual(integration.integrates, [v1.id, v2.id]);
        const done = await h.waitState("integrate-ext-ways-v1", ["succeeded", "failed"], 30_000);
        assert.equal(done.state, "succeeded", done.error);
        assert.match(String(item(tree().agentNode(done.id)).description), / · integrates ext-ways-v1, ext-ways-v2/);
    });

    sub.dispose();
}

/** The (original, modified) pairs of the active diff tab: a diff editor or a multi-file diff editor. */
async function diffPairs(): Promise<{ original: vscode.Uri; modified: vscode.Uri }[]> {
    const tab = await waitFor("a diff tab", 10_000, () => vscode.window.tabGroups.activeTabGroup.activeTab, vscode.window.tabGroups.onDidChangeTabs);
    const input = tab.input;
    // The multi-file diff editor's input (TabInputTextMultiDiff) is not in @types/vscode 1.91.
    const multi = (input as { textDiffs?: { original: vscode.Uri; modified: vscode.Uri }[] } | undefined)?.textDiffs;
    if (multi !== undefined) return multi;
    if (input instanceof vscode.TabInputTextDiff) return [input];
    throw new Error(`the active tab is not a diff: ${tab.label}`);
}

async function noRepoSuite(r: Runner, h: Harness): Promise<void> {
    const ctx = () => h.ctx();

    await r.test("a window without a repository starts no daemon connection and shows no status", async () => {
        await ctx().ready;
        assert.deepEqual(ctx().store.getRoots(), []);
        assert.equal(ctx().isStarted(), false, "the connection was started");
        assert.equal(ctx().client(), undefined);
        assert.equal(ctx().statusBarShown(), false);
    });

    await r.test("a command connects; the agents of other repositories are neither shown nor counted", async () => {
        await vscode.commands.executeCommand("bgagents.refresh");
        assert.ok(ctx().isStarted());
        assert.ok(ctx().client());
        assert.ok(
            ctx()
                .store.all()
                .some((a) => a.repo === REPO && a.name === "ext-cli"),
            "the daemon listed the other repository's agents",
        );
        assert.deepEqual(ctx().store.tree(), []);
        assert.deepEqual(ctx().store.counts(), { running: 0, needsInput: 0 });
        assert.equal(ctx().statusBarShown(), false);
    });

    await r.test("an agent of another repository that finishes is not announced", async () => {
        const notices: string[] = [];
        const sub = ctx().onDidShowNotice((n) => notices.push(n.notice.message));
        try {
            await cli(["spawn", "--name", "norepo-probe", "Notes nobody here sees"]);
            await h.waitState("norepo-probe", ["succeeded"]);
            assert.deepEqual(notices, []);
            assert.deepEqual(ctx().store.tree(), []);
        } finally {
            sub.dispose();
        }
        const probe = h.agentNamed("norepo-probe");
        assert.ok(probe);
        await cli(["rm", "--force", probe.id]);
    });

    await r.test("spawning without a repository says to open one, before asking anything", async () => {
        const failures: string[] = [];
        const sub = ctx().onDidFailCommand((f) => failures.push(f.message));
        try {
            assert.equal(await vscode.commands.executeCommand("bgagents.spawn", { task: "Nowhere to run" }), undefined);
        } finally {
            sub.dispose();
        }
        assert.deepEqual(failures, ["Open a folder of a git repository first: agents work on the repository of the open folder."]);
    });

    await r.test("a `bgagents lsp` that cannot connect: one error with what it said on stderr (not the install hint), the status bar says so and restarts; fixing the path reconnects", async () => {
        // A stand-in for `bgagents lsp` refusing another build's daemon.
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bgagents-fake-"));
        const fake = path.join(dir, "bgagents");
        fs.writeFileSync(fake, "#!/bin/sh\ncat >&2 <<'EOF'\nbgagents: the running daemon (pid 4242) is not this binary's build (test); stop it with `bgagents daemon --stop`\nEOF\nexit 1\n", { mode: 0o755 });
        const states: { state: string; message: string }[] = [];
        const sub = ctx().onDidChangeConnection((c) => states.push(c));
        const cfg = () => vscode.workspace.getConfiguration("bgagents");
        try {
            await cfg().update("path", fake, vscode.ConfigurationTarget.Workspace);
            const failed = await waitFor("the connection to fail", 30_000, () => (ctx().connectionState().state === "failed" ? ctx().connectionState() : undefined), ctx().onDidChangeConnection);
            assert.match(failed.message, /is not this binary's build \(test\); stop it with `bgagents daemon --stop`/);
            assert.equal(states.filter((c) => c.state === "failed" || c.state === "disconnected").length, 1, JSON.stringify(states));
            assert.equal(ctx().statusBarText(), "$(error) bgagents: not connected");
            assert.ok(ctx().statusBarShown());
            assert.equal(ctx().client(), undefined);
        } finally {
            await cfg().update("path", undefined, vscode.ConfigurationTarget.Workspace);
            sub.dispose();
        }
        await waitFor("connected again", 30_000, () => (ctx().connectionState().state === "connected" ? true : undefined), ctx().onDidChangeConnection);
        assert.equal(states.filter((c) => c.state === "failed" || c.state === "disconnected").length, 1, JSON.stringify(states));
        assert.equal(ctx().statusBarShown(), false, "a window without a repository shows no counts");
    });
}

async function nestedSuite(r: Runner, h: Harness): Promise<void> {
    const ctx = () => h.ctx();

    await r.test("a folder that contains a repository: its repository is found and connected without a command", async () => {
        await ctx().ready;
        assert.deepEqual(ctx().store.getRoots(), [REPO]);
        assert.ok(ctx().isStarted());
        await waitFor("the client to start", 20_000, () => ctx().client(), ctx().onDidStart);
        assert.ok(ctx().statusBarShown());
    });

    await r.test("its agents are shown", async () => {
        await waitFor("the agents listed", 10_000, () => (h.shown().includes("ext-cli") ? true : undefined), ctx().store.onDidChange);
        assert.deepEqual(
            ctx()
                .store.tree()
                .map((g) => g.repo),
            [REPO],
        );
    });
}
