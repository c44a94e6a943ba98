// Extension-host tests: run INSIDE a real VS Code (code-server), loaded from
// the source folder through the URL payload (extensionDevelopmentPath +
// extensionTestsPath; see test/run.js). They drive the extension's commands
// against the real daemon and a scripted agent, and wait on the extension's
// own events with deadlines, never on sleeps.
//
// Environment (set by vscode_test.go, inherited through code-server):
//   BGAGENTS_TEST_REPO   the workspace folder: a git repository whose
//                        default agent is test/agent.sh
//   BGAGENTS_TEST_BIN    the bgagents binary (for the CLI as a second client)
//   BGAGENTS_TEST_GATES  a directory for files the agent waits on
//   BGAGENTS_TEST_RESULTS  file the results are appended to

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as vscode from "vscode";

import type { Api } from "../../src/main";
import type { Agent, State } from "../../src/lsp_ext";

const REPO = env("BGAGENTS_TEST_REPO");
const BIN = env("BGAGENTS_TEST_BIN");
const GATES = env("BGAGENTS_TEST_GATES");
const RESULTS = process.env["BGAGENTS_TEST_RESULTS"];

function env(name: string): string {
    const v = process.env[name];
    if (v === undefined || v === "") throw new Error(`${name} is not set`);
    return v;
}

function report(line: string): void {
    console.log(`[ext-test] ${line}`);
    if (RESULTS !== undefined) fs.appendFileSync(RESULTS, line + "\n");
}

/** Resolves when pred holds for an event of `event`, or checks `now` first; rejects after ms. */
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

export async function run(): Promise<void> {
    const results: { name: string; ok: boolean; ms: number; error?: string }[] = [];
    const test = async (name: string, fn: () => Promise<void>): Promise<void> => {
        const t = Date.now();
        try {
            await fn();
            results.push({ name, ok: true, ms: Date.now() - t });
            report(`ok   ${name} (${Date.now() - t} ms)`);
        } catch (e) {
            const msg = e instanceof Error ? (e.stack ?? e.message) : String(e);
            results.push({ name, ok: false, ms: Date.now() - t, error: msg });
            report(`FAIL ${name}: ${msg.split("\n").slice(0, 6).join("\n     ")}`);
        }
    };

    const extension = vscode.extensions.getExtension<Api>("bgagents.bgagents");
    let api: Api | undefined;
    const ctx = () => {
        if (api === undefined) throw new Error("extension not activated");
        return api.ctx;
    };
    const agentNamed = (name: string): Agent | undefined => api?.agents().find((a) => a.name === name && a.repo === REPO);
    /** Waits until agent `name` is in one of the states. */
    const waitState = (name: string, states: State[], ms = 20_000): Promise<Agent> =>
        waitFor(
            `agent ${name} in ${states.join("/")}`,
            ms,
            () => {
                const a = agentNamed(name);
                return a !== undefined && states.includes(a.state) ? a : undefined;
            },
            ctx().store.onDidChange,
        );

    await test("the extension activates and registers every contributed command", async () => {
        assert.ok(extension, "extension bgagents.bgagents not found");
        api = await extension.activate();
        const contributed = (extension.packageJSON as { contributes: { commands: { command: string }[] } }).contributes.commands.map((c) => c.command);
        const registered = new Set(await vscode.commands.getCommands(true));
        for (const c of contributed) assert.ok(registered.has(c), `command ${c} is not registered`);
    });

    await test("connects to the daemon through `bgagents lsp`", async () => {
        await waitFor("the client to start", 20_000, () => ctx().client(), ctx().onDidStart);
        assert.deepEqual(ctx().store.getRoots(), [REPO]);
        const registered = new Set(await vscode.commands.getCommands(true));
        assert.ok(registered.has("bgagents.sendToAgent"), "the server's command bgagents.sendToAgent is not registered by the client");
    });

    let first: Agent | undefined;
    await test("bgagents.spawn with a task: the agent runs, finishes and is announced with Show Diff, Open Worktree, Merge", async () => {
        const notices: string[][] = [];
        const sub = ctx().onDidShowNotice((n) => {
            if (n.agent.name === "ext-first") notices.push(n.notice.actions);
        });
        try {
            const spawned = (await vscode.commands.executeCommand("bgagents.spawn", { task: "Fix add in calc.go", name: "ext-first" })) as Agent | undefined;
            assert.ok(spawned, "spawn returned nothing (see the error notification)");
            assert.equal(spawned.name, "ext-first");
            first = await waitState("ext-first", ["succeeded", "failed"]);
            assert.equal(first.state, "succeeded", first.error);
            assert.equal(first.diff.files, 2);
            await waitFor("the notification", 5000, () => (notices.length > 0 ? notices : undefined), ctx().onDidShowNotice);
            assert.deepEqual(notices[0], ["Show Diff", "Open Worktree", "Merge"]);
        } finally {
            sub.dispose();
        }
    });

    await test("a failed agent is announced as an error with Show Log, Reply, Open Worktree", async () => {
        const notices: { severity: string; message: string; actions: string[] }[] = [];
        const sub = ctx().onDidShowNotice((n) => {
            if (n.agent.name === "ext-fail") notices.push(n.notice);
        });
        try {
            const spawned = (await vscode.commands.executeCommand("bgagents.spawn", { task: "Try and FAIL", name: "ext-fail" })) as Agent | undefined;
            assert.ok(spawned);
            const failed = await waitState("ext-fail", ["failed", "succeeded"]);
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

    await test("the tree shows the agent with branch and diffstat, and its changed files", async () => {
        const tree = ctx().tree;
        const roots = (await tree.getChildren()) ?? [];
        const node = roots.find((n) => n.kind === "agent" && ctx().store.get(n.id)?.name === "ext-first");
        assert.ok(node, "no tree node for ext-first");
        const item = tree.getTreeItem(node);
        assert.equal(item.label, "ext-first");
        assert.match(String(item.description), /^bgagents\/ext-first · \w+ · 2 files \+2 −1$/);
        assert.match(String(item.contextValue), /\bmerge\b/);
        assert.equal((item.iconPath as vscode.ThemeIcon).id, "pass");
        const files = ((await tree.getChildren(node)) ?? []).map((n) => (n.kind === "file" ? n.file.path : ""));
        assert.deepEqual(files.sort(), ["NOTES.md", "calc.go"]);
    });

    await test("bgagents.showDiff opens the changed files against the base", async () => {
        await vscode.commands.executeCommand("workbench.action.closeAllEditors");
        await vscode.commands.executeCommand("bgagents.showDiff", first!.id);
        const tab = await waitFor(
            "a diff tab",
            10_000,
            () => vscode.window.tabGroups.activeTabGroup.activeTab,
            vscode.window.tabGroups.onDidChangeTabs,
        );
        const input = tab.input;
        let pairs: { original: vscode.Uri; modified: vscode.Uri }[];
        // The multi-file diff editor's input (TabInputTextMultiDiff) is not in @types/vscode 1.138 yet.
        const multi = (input as { textDiffs?: { original: vscode.Uri; modified: vscode.Uri }[] } | undefined)?.textDiffs;
        if (multi !== undefined) pairs = multi;
        else if (input instanceof vscode.TabInputTextDiff) pairs = [input];
        else throw new Error(`the active tab is not a diff: ${tab.label}`);
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

    await test("bgagents.openFileDiff opens one file's diff from the tree", async () => {
        const file = { kind: "file", agentId: first!.id, file: { path: "calc.go", status: "M", additions: 1, deletions: 1 } };
        await vscode.commands.executeCommand("bgagents.openFileDiff", file);
        const tab = vscode.window.tabGroups.activeTabGroup.activeTab;
        assert.ok(tab?.input instanceof vscode.TabInputTextDiff, `active tab: ${tab?.label}`);
        assert.match(tab.label, /^calc\.go \(\w{7} ↔ bgagents\/ext-first\)$/);
    });

    await test("bgagents.showLog prints the agent's activity as readable lines", async () => {
        await vscode.commands.executeCommand("bgagents.showLog", first!.id);
        const lines = await waitFor(
            "log lines",
            10_000,
            () => {
                const l = ctx().logs.recentLines(first!.id);
                return l !== undefined && l.some((x) => x.includes("succeeded")) ? l : undefined;
            },
            ctx().store.onDidChange,
        ).catch(() => ctx().logs.recentLines(first!.id) ?? []);
        const text = lines.join("\n");
        assert.match(text, /^\d\d:\d\d:\d\d ● running — agent started$/m);
        assert.match(text, /^\d\d:\d\d:\d\d   working on: Fix add in calc\.go$/m);
        assert.match(text, /● succeeded — agent exited 0/);
    });

    await test("bgagents.followUp runs the agent again in the same worktree, and the open log follows it", async () => {
        const res = (await vscode.commands.executeCommand("bgagents.followUp", first!.id, "Also document it")) as Agent | undefined;
        assert.ok(res, "followUp returned nothing");
        const done = await waitState("ext-first", ["succeeded", "failed"]);
        assert.equal(done.runs, 2);
        assert.equal(done.diff.commits, 2);
        const lines = await waitFor(
            "the follow-up in the log",
            10_000,
            () => {
                const l = ctx().logs.recentLines(first!.id) ?? [];
                return l.filter((x) => x.includes("● succeeded")).length >= 2 ? l : undefined;
            },
            ctx().store.onDidChange,
        ).catch(() => ctx().logs.recentLines(first!.id) ?? []);
        assert.match(lines.join("\n"), /✉ you: Also document it/);
        assert.equal(lines.filter((x) => x.includes("● succeeded")).length, 2, lines.join("\n"));
    });

    await test("the status bar counts running agents; bgagents.cancel stops one", async () => {
        const gate = path.join(GATES, "never");
        const spawned = (await vscode.commands.executeCommand("bgagents.spawn", { task: `Slow work WAIT ${gate}`, name: "ext-slow" })) as Agent | undefined;
        assert.ok(spawned);
        await waitState("ext-slow", ["running"]);
        assert.equal(ctx().statusBarText(), "$(sync~spin) 1");
        // Cancel once the agent itself runs (its log says so): a cancel in the
        // first milliseconds of `running` can lose the agent (see the report).
        await vscode.commands.executeCommand("bgagents.showLog", spawned.id);
        await waitFor(
            "the agent's first output",
            10_000,
            () => (ctx().logs.recentLines(spawned.id)?.some((l) => l.includes("waiting for")) === true ? true : undefined),
            ctx().logs.onDidAppend,
        );
        const cancelled = (await vscode.commands.executeCommand("bgagents.cancel", spawned.id)) as Agent | undefined;
        assert.equal(cancelled?.state, "cancelled");
        await waitFor("status bar back to 0", 5000, () => (ctx().statusBarText() === "$(robot) 0" ? true : undefined), ctx().store.onDidChange);
    });

    await test("bgagents.merge lands the branch in main and removes the agent from the tree", async () => {
        const merged = (await vscode.commands.executeCommand("bgagents.merge", first!.id, { confirm: false })) as Agent | undefined;
        assert.equal(merged?.state, "merged");
        assert.match(fs.readFileSync(path.join(REPO, "calc.go"), "utf8"), /return a \+ b/);
        assert.ok(!fs.existsSync(first!.worktree), "worktree still exists after merge");
        const shown = ctx().store.tree().flatMap((g) => g.agents.map((a) => a.name));
        assert.ok(!shown.includes("ext-first"), `still shown: ${shown.join(", ")}`);
    });

    await test("bgagents.discard refuses to lose work without force, then discards with it", async () => {
        const slow = agentNamed("ext-slow");
        assert.ok(slow);
        // Cancelled after writing nothing: it has no commits, so no force is needed.
        const spawned = (await vscode.commands.executeCommand("bgagents.spawn", { task: "Write notes to discard", name: "ext-discard" })) as Agent | undefined;
        assert.ok(spawned);
        const done = await waitState("ext-discard", ["succeeded"]);
        const refused = await vscode.commands.executeCommand("bgagents.discard", done.id, { confirm: false });
        assert.equal(refused, undefined, "discard without force should be refused (unmerged commits)");
        assert.ok(fs.existsSync(done.worktree));
        const discarded = (await vscode.commands.executeCommand("bgagents.discard", done.id, { confirm: false, force: true })) as Agent | undefined;
        assert.equal(discarded?.state, "discarded");
        assert.ok(!fs.existsSync(done.worktree), "worktree still exists after discard");
        const again = (await vscode.commands.executeCommand("bgagents.discard", slow.id, { confirm: false, force: true })) as Agent | undefined;
        assert.equal(again?.state, "discarded");
        assert.deepEqual(ctx().store.tree(), []);
    });

    await test("bgagents.sendSelection sends the selection as context", async () => {
        const doc = await vscode.workspace.openTextDocument(path.join(REPO, "calc.go"));
        const editor = await vscode.window.showTextDocument(doc);
        editor.selection = new vscode.Selection(3, 0, 5, 1);
        const spawned = (await vscode.commands.executeCommand("bgagents.sendSelection", { task: "Explain this function", name: "ext-selection" })) as Agent | undefined;
        assert.ok(spawned, "sendSelection returned nothing");
        assert.equal(spawned.context?.file, "calc.go");
        assert.equal(spawned.context?.startLine, 4);
        assert.equal(spawned.context?.endLine, 6);
        assert.match(spawned.context?.text ?? "", /^func add\(a, b int\) int \{/);
        await waitState("ext-selection", ["succeeded"]);
    });

    await test("the daemon's code action is offered for a selection", async () => {
        const uri = vscode.Uri.file(path.join(REPO, "calc.go"));
        const actions = (await vscode.commands.executeCommand("vscode.executeCodeActionProvider", uri, new vscode.Range(3, 0, 5, 1))) as vscode.CodeAction[];
        const send = actions.find((a) => a.title === "Send to background agent");
        assert.ok(send, `actions: ${actions.map((a) => a.title).join(", ")}`);
        assert.equal(send.command?.command, "bgagents.sendToAgent");
        assert.equal(send.kind?.value, "refactor.bgagents");
    });

    await test("an agent spawned by another client (the CLI) appears", async () => {
        await new Promise<void>((resolve, reject) =>
            execFile(BIN, ["spawn", "--name", "ext-cli", "Notes from the CLI"], { cwd: REPO }, (err, _out, stderr) =>
                err !== null ? reject(new Error(`bgagents spawn: ${err.message} ${stderr}`)) : resolve(),
            ),
        );
        const a = await waitState("ext-cli", ["succeeded"]);
        assert.ok(ctx().store.tree()[0]?.agents.some((x) => x.id === a.id));
    });

    await test("bgagents.refresh lists again", async () => {
        await vscode.commands.executeCommand("bgagents.refresh");
        assert.ok(agentNamed("ext-cli"));
    });

    const failed = results.filter((r) => !r.ok).length;
    report(`${results.length - failed} passed, ${failed} failed`);
    if (failed > 0) throw new Error(`${failed} extension-host test(s) failed`);
}
