// Checks of package.json: what VS Code reads from the manifest cannot be
// observed from the extension's code.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { suite, test } from "node:test";

import type { Review } from "../../src/lsp_ext";
import { contextValue } from "../../src/model";
import { agent } from "./fixtures";

interface MenuEntry {
    command: string;
    when?: string;
    group?: string;
}

interface Manifest {
    engines: { vscode: string };
    devDependencies: Record<string, string>;
    activationEvents: string[];
    contributes: {
        commands: { command: string; icon?: string }[];
        menus: Record<string, MenuEntry[]>;
        configuration: { properties: Record<string, { scope?: string }> };
    };
}

// out/unit/manifest.test.js → extensions/vscode/package.json
const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package.json"), "utf8")) as Manifest;
const lock = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "..", "package-lock.json"), "utf8")) as {
    packages: Record<string, { version?: string; engines?: Record<string, string> }>;
};

suite("manifest", () => {
    test("engines.vscode is the oldest VS Code the bundled language client supports, and the @types/vscode the code is checked against", () => {
        // The extension's own APIs are older (tsc checks them against @types/vscode of that version).
        const client = lock.packages["node_modules/vscode-languageclient"]?.engines?.["vscode"];
        assert.ok(client !== undefined, "vscode-languageclient's engines.vscode");
        assert.equal(manifest.engines.vscode, client);
        const types = manifest.devDependencies["@types/vscode"]!;
        assert.equal(manifest.engines.vscode, `^${types}`);
        assert.equal(lock.packages["node_modules/@types/vscode"]?.version, types, "package-lock.json has the same @types/vscode");
    });

    test("bgagents.path is machine-overridable, like rust-analyzer's server path", () => {
        assert.equal(manifest.contributes.configuration.properties["bgagents.path"]?.scope, "machine-overridable");
    });

    test("no activation in every window: only with a repository, the view or a command", () => {
        assert.ok(!manifest.activationEvents.includes("onStartupFinished"));
        assert.ok(!manifest.activationEvents.includes("*"));
        assert.deepEqual(manifest.activationEvents, ["workspaceContains:.git", "onView:bgagents.agents"]);
    });

    test("Show Log, Merge and Discard are inline actions of an agent, with icons, and stay in the context menu", () => {
        const items = manifest.contributes.menus["view/item/context"] ?? [];
        for (const command of ["bgagents.showLog", "bgagents.merge", "bgagents.discard", "bgagents.openWorktree", "bgagents.showDiff", "bgagents.followUp", "bgagents.cancel", "bgagents.review"]) {
            const inline = items.filter((i) => i.command === command && i.group?.startsWith("inline") === true);
            const menu = items.filter((i) => i.command === command && i.group?.startsWith("inline") !== true);
            assert.equal(inline.length, 1, `${command} inline`);
            assert.equal(menu.length, 1, `${command} in the context menu`);
            assert.equal(inline[0]!.when, menu[0]!.when, `${command}: the same condition inline and in the menu`);
            assert.match(manifest.contributes.commands.find((c) => c.command === command)?.icon ?? "", /^\$\([a-z-]+\)$/, `${command} icon`);
        }
    });

    test("landing: every menu entry names a contributed command with a codicon; agent rows offer push, pull request, findings and spawn after by their contextValue words; groups and conflicts offer integration", () => {
        const commands = new Map(manifest.contributes.commands.map((c) => [c.command, c] as const));
        for (const [menu, items] of Object.entries(manifest.contributes.menus)) {
            for (const i of items) {
                assert.ok(commands.has(i.command), `${menu}: ${i.command} is not contributed`);
                assert.match(commands.get(i.command)?.icon ?? "", /^\$\([a-z-]+\)$/, `${i.command} icon`);
            }
        }
        const items = manifest.contributes.menus["view/item/context"] ?? [];
        const when = (command: string) => items.filter((i) => i.command === command).map((i) => i.when ?? "");
        const matches = (command: string, contextValue: string) => when(command).some((w) => new RegExp(/viewItem =~ \/(.*)\/$/.exec(w)?.[1] ?? "^$").test(contextValue));
        // The real contextValue of a finished agent with a review that has findings.
        const row = contextValue(
            agent({ reviews: [{ id: "r1", name: "review-fix-add", agent: "asker", state: "succeeded", head: "abc", verdict: "request_changes", findings: [{ message: "add has no test" }], createdAt: "2026-11-21T16:00:06Z" } satisfies Review] }),
        );
        assert.match(row, /\bfindings\b/);
        const never = contextValue(agent({ state: "failed", startedAt: null }));
        for (const c of ["bgagents.merge", "bgagents.followUp", "bgagents.openWorktree", "bgagents.showDiff", "bgagents.push", "bgagents.review", "bgagents.spawnAfter"]) assert.ok(!matches(c, never), `${c} on an agent that never started`);
        for (const c of ["bgagents.showLog", "bgagents.discard"]) assert.ok(matches(c, never), `${c} on an agent that never started`);
        for (const c of ["bgagents.push", "bgagents.pullRequest", "bgagents.showFindings", "bgagents.spawnAfter", "bgagents.review"]) assert.ok(matches(c, row), `${c} on an agent row`);
        assert.ok(matches("bgagents.integrateVariants", "bgagentsGroup integrate"));
        assert.ok(!matches("bgagents.integrateVariants", "bgagentsGroup"));
        assert.ok(matches("bgagents.integrate", "bgagentsConflict integrate"));
        assert.ok(matches("bgagents.showLog", "bgagentsReview reviewer cancel findings") && matches("bgagents.cancel", "bgagentsReview reviewer cancel findings"));
        assert.ok(!matches("bgagents.review", "bgagentsReview reviewer findings") && !matches("bgagents.merge", "bgagentsReview reviewer findings"));
        const palette = manifest.contributes.menus["commandPalette"] ?? [];
        for (const hidden of ["bgagents.openFinding", "bgagents.integrateVariants"]) assert.ok(palette.some((p) => p.command === hidden && p.when === "false"), `${hidden} is hidden from the palette`);
    });
});
