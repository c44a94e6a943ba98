import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { agentChoices, modelChoices, modelFits, reviewerChoices, variantChoices } from "../../src/choices";
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
        assert.deepEqual(c[0], { label: "script", description: "default · command", value: undefined, provider: "command" });
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
        assert.deepEqual(c[0], { label: "claude", description: "default (setting bgagents.defaultAgent) · claude", value: "claude", provider: "claude" });
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
    const used = (...xs: [string, string][]) => xs.map(([model, provider]) => ({ model, provider }));

    test("default, models used before, other", () => {
        const c = modelChoices("", used(["sonnet", "claude"], ["", "claude"], ["opus", "claude"], ["sonnet", "claude"]));
        assert.deepEqual(
            c.map((x) => [x.label, x.value, x.other === true]),
            [
                ["Default model", undefined, false],
                ["opus", "opus", false],
                ["sonnet", "sonnet", false],
                ["Other…", undefined, true],
            ],
        );
        assert.equal(modelChoices("opus", used(["opus", "claude"]))[0]!.value, "opus");
        assert.equal(modelChoices("opus", used(["opus", "claude"])).length, 2);
    });

    test("the agent's configured model is the default, left to the daemon", () => {
        const c = modelChoices("", used(["opus", "claude"], ["sonnet", "claude"]), "opus", "claude");
        assert.deepEqual(c[0], { label: "opus", description: "the agent's configured model", value: undefined });
        assert.deepEqual(
            c.map((x) => x.label),
            ["opus", "sonnet", "Other…"],
        );
    });

    test("only the chosen agent's vendor's models used before are offered", () => {
        const known = used(["opus", "claude"], ["o3", "codex"], ["gpt-5", "codex"]);
        assert.deepEqual(
            modelChoices("", known, undefined, "codex").map((x) => x.label),
            ["Default model", "gpt-5", "o3", "Other…"],
        );
        assert.deepEqual(
            modelChoices("", known, undefined, "claude").map((x) => x.label),
            ["Default model", "opus", "Other…"],
        );
    });

    test("the setting bgagents.defaultModel is the default only for an agent it fits", () => {
        const known = used(["opus", "claude"]);
        // Used with claude before: fits claude, not codex.
        assert.equal(modelChoices("opus", known, undefined, "claude")[0]!.value, "opus");
        assert.deepEqual(modelChoices("opus", known, undefined, "codex")[0], { label: "Default model", description: "the agent's CLI's default", value: undefined });
        // Never used: by its name's family.
        assert.equal(modelChoices("gpt-5", [], undefined, "codex")[0]!.value, "gpt-5");
        assert.equal(modelChoices("gpt-5", [], "sonnet", "claude")[0]!.label, "sonnet");
        assert.equal(modelChoices("claude-sonnet-4", [], undefined, "claude")[0]!.value, "claude-sonnet-4");
        // A name of no known family, or an agent of unknown provider: it is offered.
        assert.equal(modelChoices("my-model", [], undefined, "opencode")[0]!.value, "my-model");
        assert.equal(modelChoices("o3", [], undefined, undefined)[0]!.value, "o3");
        assert.ok(modelFits("o3", "command", []), "command agents take any model");
        assert.ok(!modelFits("sonnet", "codex", []));
    });
});

suite("reviewer choices", () => {
    test("another vendor than the writer's first, then the daemon's default, then the rest; no agent without a read-only mode", () => {
        const c = reviewerChoices({ agent: "script", provider: "command" }, result);
        assert.deepEqual(
            c.map((x) => [x.label, x.value]),
            [
                ["reviewer", "reviewer"],
                ["Default reviewer: script", undefined],
                ["claude", "claude"],
            ],
        );
        assert.match(c[0]!.description ?? "", /another vendor than the writer's \(command\)/);
        assert.equal(c[0]!.model, "opus", "the reviewer's configured model is offered in the model step");
        assert.ok(!c.some((x) => x.label === "script" || x.label === "broken"), "command agents and agents that cannot run are left out");
        assert.equal(c[1]!.description, "the writer's own agent (no [review].agent)");
    });

    test("agents are offered by readOnly (not by provider), and the default names [review].agent and its model", () => {
        const r: AgentsResult = {
            ...result,
            agents: [
                { name: "wrapper", provider: "command", configured: true, installed: true, readOnly: true },
                { name: "writer-only", provider: "claude", configured: true, installed: true, readOnly: false },
                { name: "codex", provider: "codex", configured: false, installed: true, readOnly: true },
            ],
            review: { agent: "codex", model: "o3", auto: false },
        };
        const c = reviewerChoices({ agent: "claude", provider: "claude" }, r);
        assert.deepEqual(
            c.map((x) => x.label),
            ["wrapper", "Default reviewer: codex", "codex"],
        );
        assert.equal(c[1]!.description, "[review].agent of the repository · o3");
        assert.equal(c[1]!.model, "o3");
    });

    test("a claude writer: the default first when no other vendor can run", () => {
        const c = reviewerChoices({ agent: "reviewer", provider: "claude" }, result);
        assert.deepEqual(
            c.map((x) => x.label),
            ["Default reviewer: reviewer", "reviewer", "claude"],
        );
    });

    test("when the daemon cannot list agents: the default and the other vendors", () => {
        const c = reviewerChoices({ agent: "claude", provider: "claude" }, undefined);
        assert.deepEqual(
            c.map((x) => x.label),
            ["Default reviewer: claude", "codex", "gemini", "opencode", "aider", "copilot"],
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
