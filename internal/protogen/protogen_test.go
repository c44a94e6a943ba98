package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bgagents/bgagents/server"
)

// The committed TypeScript and Lua mirrors must be exactly what the Go
// declarations generate.
func TestGeneratedFilesAreCurrent(t *testing.T) {
	root := filepath.Join("..", "..")
	files := Generate()
	doc, err := os.ReadFile(filepath.Join(root, DocFile))
	if err != nil {
		t.Fatal(err)
	}
	files[DocFile] = FillDoc(doc, files)
	if !bytes.Contains(doc, []byte("<!-- protogen:ts -->")) || !bytes.Contains(doc, []byte("<!-- protogen:lua -->")) {
		t.Fatalf("%s lost its protogen markers", DocFile)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(root, name))
		if err != nil {
			t.Fatalf("%s: %v (run go run ./internal/protogen)", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run go run ./internal/protogen", name)
		}
	}
}

// Every custom method the daemon routes is declared for the editors, and
// the generated files name each with its types.
func TestEveryMethodIsGenerated(t *testing.T) {
	files := Generate()
	ts, lua := string(files[TSFile]), string(files[LuaFile])
	for _, m := range append(append([]server.MethodSpec{}, server.Requests...), server.Notifications...) {
		if !strings.Contains(ts, `"`+m.Method+`"`) || !strings.Contains(lua, `"`+m.Method+`"`) {
			t.Errorf("%s missing from the generated files", m.Method)
		}
	}
	for _, want := range []string{"export interface Agent {", "  state: State;", "  exitCode: number | null;", "  context?: Context | null;", "new lc.RequestType<SpawnParams, SpawnResult, void>(\"bgagents/spawn\")"} {
		if !strings.Contains(ts, want) {
			t.Errorf("TypeScript lacks %q", want)
		}
	}
	for _, want := range []string{"---@class bgagents.Agent", "---@field state bgagents.State", "---@field exitCode integer|nil"} {
		if !strings.Contains(lua, want) {
			t.Errorf("Lua lacks %q", want)
		}
	}
}
