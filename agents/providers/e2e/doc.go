// Package e2e holds end-to-end tests of the agent providers: each test runs
// a real agent CLI (Claude Code, Codex, Gemini CLI, OpenCode) through the
// real daemon (an in-process server whose shim is the built bgagents
// binary) in a worktree of a real git repository, against the fake model
// server of package fakemodel on 127.0.0.1. Nothing leaves the machine.
//
// The CLIs are not vendored: `.ci/install-agent-clis` installs pinned
// versions into $BGAGENTS_CLI_DIR (default <repo>/.cache/agent-clis). A
// test whose CLI is not installed there skips and says so, and so does
// every test with -short. To run them:
//
//	bash .ci/install-agent-clis
//	go test ./agents/providers/e2e
//
// Each test gives its CLI a private HOME (and XDG directories) holding the
// configuration files the CLI needs to talk to the fake server, and points
// it there through the agent's `env` in .bgagents.toml, so the developer's
// own configuration and credentials are never read.
//
// The package has tests only; this file exists so that it is a package.
package e2e
