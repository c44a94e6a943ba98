import assert from "node:assert/strict";
import { suite, test } from "node:test";

import { agentChoices, modelChoices, scanToml } from "../../src/choices";

suite("agent choices", () => {
    test("the repository default first (left to the daemon), then configured agents, then providers", () => {
        const c = agentChoices("", { names: ["script", "claude"], repoDefault: "script" });
        assert.deepEqual(c[0], { label: "script", description: "default ([defaults].agent)", value: undefined });
        assert.deepEqual(
            c.map((x) => x.label),
            ["script", "claude", "codex", "gemini", "opencode", "aider", "copilot"],
        );
    });

    test("the setting wins and is sent explicitly", () => {
        const c = agentChoices("codex", { names: [], repoDefault: "script" });
        assert.deepEqual(c[0], { label: "codex", description: "default (setting bgagents.defaultAgent)", value: "codex" });
        assert.equal(c.filter((x) => x.label === "codex").length, 1);
    });

    test("without any configuration the daemon's default is claude", () => {
        assert.equal(agentChoices("", { names: [], repoDefault: undefined })[0]!.label, "claude");
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
});

suite("scanToml", () => {
    test("finds [agents.NAME] tables and [defaults].agent", () => {
        const text = [
            "[defaults]",
            'agent = "script"   # the default',
            "max_concurrent = 4",
            "",
            "[agents.script]",
            'command = ["./tools/agent.sh", "{prompt}"]',
            '[agents."my agent"]',
            "[agents.claude]",
            'agent = "not-a-default"',
            "[worktree]",
        ].join("\n");
        assert.deepEqual(scanToml(text), { agents: ["script", "my agent", "claude"], defaultAgent: "script" });
    });
});
