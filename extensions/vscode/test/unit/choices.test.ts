import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { agentChoices, modelChoices } from "../../src/choices";
import type { AgentsResult } from "../../src/lsp_ext";

// What bgagents/agents answers (docs/protocol.md §4.15).
const result: AgentsResult = {
    default: "script",
    agents: [
        { name: "reviewer", provider: "claude", model: "opus", configured: true, installed: true },
        { name: "script", provider: "command", configured: true, installed: true },
        { name: "broken", provider: "codex", configured: true, installed: false, problem: 'agent executable not found: "codex" is not on PATH' },
        { name: "aider", provider: "aider", configured: false, installed: false, problem: "agent executable not found" },
        { name: "claude", provider: "claude", configured: false, installed: true },
    ],
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
