import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { agentChoices, modelChoices, reviewerChoices, variantChoices } from "../../src/choices";
import type { AgentsResult } from "../../src/lsp_ext";

// What bgagents/agents answers (docs/protocol.md §4.15).
const result: AgentsResult = {
    default: "script",
    agents: [
        { name: "reviewer", provider: "claude", model: "opus", configured: true, installed: true, readOnly: true },
        { name: "script", provider: "command", configured: true, installed: true, readOnly: false },
        { name: "broken", provider: "codex", configured: true, installed: false, problem: 'agent executable not found: "codex" is not on PATH', readOnly: true },
        { name: "aider", provider: "aider", configured: false, installed: false, problem: "agent executable not found", readOnly: true },
        { name: "claude", provider: "claude", configured: false, installed: true, readOnly: true },
    ],
    review: { auto: false },
    push: { remote: "origin", remotes: ["origin"], gh: false },
};

suite("agent choices", () => {
    test("the daemon's default first (left to the daemon), then configured agents, then installed vendor CLIs", () => {
        const c = agentChoices("", result);
        assert.deepEqual(c[0], { label: "script", description: "default · command", value: undefined });
        assert.deepEqual(
            c.map((x) => x.label),
            ["script", "reviewer", "broken", "claude"],
        );
        assert.equal(c[1]!.description, "claude · opus");
        assert.equal(c[1]!.model, "opus", "the configured model is offered in the model step");
        assert.match(c[2]!.description ?? "", /^codex · cannot run: agent executable not found/);
        assert.ok(!c.some((x) => x.label === "aider"), "vendor CLIs that are not installed are left out");
    });

    test("the setting wins and is sent explicitly", () => {
        const c = agentChoices("claude", result);
        assert.deepEqual(c[0], { label: "claude", description: "default (setting bgagents.defaultAgent) · claude", value: "claude" });
        assert.equal(c.filter((x) => x.label === "claude").length, 1);
        assert.equal(c[1]!.label, "reviewer");
    });

    test("when the daemon cannot list agents: its default and the vendor providers", () => {
        const c = agentChoices("", undefined);
        assert.deepEqual(c[0], { label: "Default agent", description: "the repository's [defaults].agent", value: undefined });
        assert.deepEqual(
            c.slice(1).map((x) => x.label),
            ["claude", "codex", "gemini", "opencode", "aider", "copilot"],
        );
    });
});

suite("model choices", () => {
    test("default, models used before, other", () => {
        const c = modelChoices("", ["sonnet", "", "opus", "sonnet"]);
        assert.deepEqual(
            c.map((x) => [x.label, x.value, x.other === true]),
            [
                ["Default model", undefined, false],
                ["opus", "opus", false],
                ["sonnet", "sonnet", false],
                ["Other…", undefined, true],
            ],
        );
        assert.equal(modelChoices("opus", ["opus"])[0]!.value, "opus");
        assert.equal(modelChoices("opus", ["opus"]).length, 2);
    });

    test("the agent's configured model is the default, left to the daemon", () => {
        const c = modelChoices("", ["opus", "sonnet"], "opus");
        assert.deepEqual(c[0], { label: "opus", description: "the agent's configured model", value: undefined });
        assert.deepEqual(
            c.map((x) => x.label),
            ["opus", "sonnet", "Other…"],
        );
    });
});

suite("reviewer choices", () => {
    test("another vendor than the writer's first, then the daemon's default, then the rest; no agent without a read-only mode", () => {
        const c = reviewerChoices({ agent: "script", provider: "command" }, result);
        assert.deepEqual(
            c.map((x) => [x.label, x.value]),
            [
                ["reviewer", "reviewer"],
                ["Default reviewer", undefined],
                ["claude", "claude"],
            ],
        );
        assert.match(c[0]!.description ?? "", /another vendor than the writer's \(command\)/);
        assert.equal(c[0]!.model, "opus", "the reviewer's configured model is offered in the model step");
        assert.ok(!c.some((x) => x.label === "script" || x.label === "broken"), "command agents and agents that cannot run are left out");
    });

    test("a claude writer: the default first when no other vendor can run", () => {
        const c = reviewerChoices({ agent: "reviewer", provider: "claude" }, result);
        assert.deepEqual(
            c.map((x) => x.label),
            ["Default reviewer", "reviewer", "claude"],
        );
    });

    test("when the daemon cannot list agents: the default and the other vendors", () => {
        const c = reviewerChoices({ agent: "claude", provider: "claude" }, undefined);
        assert.deepEqual(
            c.map((x) => x.label),
            ["Default reviewer", "codex", "gemini", "opencode", "aider", "copilot"],
        );
    });
});

suite("variant choices", () => {
    test("one agent: two to five attempts; several: one per agent, or two each", () => {
        assert.deepEqual(
            variantChoices(1).map((c) => c.value),
            ["2", "3", "4", "5"],
        );
        assert.deepEqual(
            variantChoices(2).map((c) => c.label),
            ["2 variants", "4 variants"],
        );
        assert.deepEqual(
            variantChoices(6).map((c) => c.value),
            ["6"],
        );
    });
});
