// Command protogen writes the editors' typed mirror of the wire protocol
// from the Go declarations (server.Requests, server.Notifications, the
// record types): extensions/vscode/src/lsp_ext.ts and
// extensions/nvim/lua/bgagents/protocol.lua. Its test fails when the
// committed files differ from what it generates, so the three cannot drift.
//
//	go run ./internal/protogen         # rewrite the files
//	go run ./internal/protogen -check  # exit 1 when they are stale
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/bgagents/bgagents/agents"
	"github.com/bgagents/bgagents/agents/providers"
	"github.com/bgagents/bgagents/server"
)

// Output paths, relative to the module root.
const (
	TSFile  = "extensions/vscode/src/lsp_ext.ts"
	LuaFile = "extensions/nvim/lua/bgagents/protocol.lua"
	DocFile = "docs/protocol.md"
)

func main() {
	check := flag.Bool("check", false, "only check that the files are up to date")
	root := flag.String("root", ".", "module root")
	flag.Parse()
	files := Generate()
	doc, err := os.ReadFile(filepath.Join(*root, DocFile))
	if err != nil {
		fmt.Fprintln(os.Stderr, "protogen:", err)
		os.Exit(1)
	}
	files[DocFile] = FillDoc(doc, files)
	stale := 0
	for _, name := range []string{TSFile, LuaFile, DocFile} {
		path := filepath.Join(*root, name)
		if *check {
			old, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(old, files[name]) {
				fmt.Fprintf(os.Stderr, "%s is stale: run go run ./internal/protogen\n", name)
				stale++
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "protogen:", err)
			os.Exit(1)
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "protogen:", err)
			os.Exit(1)
		}
	}
	if stale > 0 {
		os.Exit(1)
	}
}

// field is one JSON field of a struct.
type field struct {
	name     string
	typ      reflect.Type
	optional bool // omitempty
}

// structType is a named struct of the wire.
type structType struct {
	name   string
	fields []field
}

var (
	timeType     = reflect.TypeOf(time.Time{})
	durationType = reflect.TypeOf(agents.Duration(0))
	stateType    = reflect.TypeOf(agents.State(""))
	kindType     = reflect.TypeOf(providers.Kind(""))
)

// collect walks the types reachable from the methods and returns the named
// structs, sorted by name.
func collect() []structType {
	seen := map[string]*structType{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice || t.Kind() == reflect.Map {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == timeType || t.Name() == "" {
			return
		}
		if _, ok := seen[t.Name()]; ok {
			return
		}
		st := &structType{name: t.Name()}
		seen[t.Name()] = st
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				// Embedded struct: its fields are flattened.
				inner := collectFields(f.Type)
				st.fields = append(st.fields, inner...)
				for _, ff := range inner {
					walk(ff.typ)
				}
				continue
			}
			if name == "" {
				name = f.Name
			}
			st.fields = append(st.fields, field{name: name, typ: f.Type, optional: strings.Contains(opts, "omitempty")})
			walk(f.Type)
		}
	}
	for _, m := range append(append([]server.MethodSpec{}, server.Requests...), server.Notifications...) {
		if m.Params != nil {
			walk(reflect.TypeOf(m.Params))
		}
		if m.Result != nil {
			walk(reflect.TypeOf(m.Result))
		}
	}
	walk(reflect.TypeOf(server.SendToAgentArgs{}))
	walk(reflect.TypeOf(server.ExperimentalCapabilities{}))
	var out []structType
	for _, st := range seen {
		out = append(out, *st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func collectFields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if !f.IsExported() || tag == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, field{name: name, typ: f.Type, optional: strings.Contains(opts, "omitempty")})
	}
	return out
}

// typeName is how a method's params or result type is named ("" for none).
func typeName(v any) string {
	if v == nil {
		return ""
	}
	t := reflect.TypeOf(v)
	if t.Name() == "" {
		return ""
	}
	return t.Name()
}

// constName turns "bgagents/openWorktree" into "openWorktree".
func constName(method string) string {
	return strings.TrimPrefix(method, "bgagents/")
}

// FillDoc replaces the text between the <!-- protogen:ts --> and
// <!-- protogen:lua --> markers of the protocol document with the
// generated declarations.
func FillDoc(doc []byte, files map[string][]byte) []byte {
	out := doc
	for _, b := range []struct{ tag, lang, file string }{{"ts", "ts", TSFile}, {"lua", "lua", LuaFile}} {
		open, close := []byte("<!-- protogen:"+b.tag+" -->\n"), []byte("<!-- /protogen:"+b.tag+" -->")
		i := bytes.Index(out, open)
		j := bytes.Index(out, close)
		if i < 0 || j < i {
			continue
		}
		var mid bytes.Buffer
		fmt.Fprintf(&mid, "```%s\n%s```\n", b.lang, files[b.file])
		out = append(append(append([]byte{}, out[:i+len(open)]...), mid.Bytes()...), out[j:]...)
	}
	return out
}

// Generate returns the generated files by path.
func Generate() map[string][]byte {
	structs := collect()
	return map[string][]byte{TSFile: genTS(structs), LuaFile: genLua(structs)}
}

const header = "generated by `go run ./internal/protogen` from the Go declarations in server/protocol.go, agents/ and agents/providers/; do not edit"

func tsType(t reflect.Type) string {
	switch {
	case t == timeType, t == durationType:
		return "string"
	case t == stateType:
		return "State"
	case t == kindType:
		return "EventKind"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return tsType(t.Elem()) + " | null"
	case reflect.Slice:
		inner := tsType(t.Elem())
		if strings.Contains(inner, " ") {
			inner = "(" + inner + ")"
		}
		return inner + "[] | null"
	case reflect.Map:
		return "Record<string, " + tsType(t.Elem()) + ">"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64, reflect.Float64:
		return "number"
	case reflect.Struct:
		if t.Name() == "" {
			return "Record<string, never>"
		}
		return t.Name()
	}
	return "unknown"
}

func genTS(structs []structType) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code %s.\n\n", header)
	b.WriteString("import * as lc from \"vscode-languageclient/node\";\n\n")
	b.WriteString("/** Agent states, as strings on the wire. */\n")
	b.WriteString("export type State =")
	for _, s := range agents.AllStates {
		fmt.Fprintf(&b, "\n  | %q", string(s))
	}
	b.WriteString(";\n\nexport const allStates: readonly State[] = [")
	for i, s := range agents.AllStates {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", string(s))
	}
	b.WriteString("];\n\n/** Event kinds. */\nexport type EventKind =")
	for _, k := range providers.AllKinds {
		fmt.Fprintf(&b, "\n  | %q", string(k))
	}
	b.WriteString(";\n\n")
	for _, st := range structs {
		fmt.Fprintf(&b, "export interface %s {\n", st.name)
		for _, f := range st.fields {
			opt := ""
			if f.optional {
				opt = "?"
			}
			fmt.Fprintf(&b, "  %s%s: %s;\n", f.name, opt, tsType(f.typ))
		}
		b.WriteString("}\n\n")
	}
	b.WriteString("/** Custom requests (client → daemon). */\n")
	for _, m := range server.Requests {
		p := typeName(m.Params)
		if p == "" {
			p = "Record<string, never>"
		}
		fmt.Fprintf(&b, "export const %s = new lc.RequestType<%s, %s, void>(%q);\n", constName(m.Method), p, typeName(m.Result), m.Method)
	}
	b.WriteString("\n/** Custom notifications (daemon → client). */\n")
	for _, m := range server.Notifications {
		fmt.Fprintf(&b, "export const %s = new lc.NotificationType<%s>(%q);\n", constName(m.Method), typeName(m.Params), m.Method)
	}
	fmt.Fprintf(&b, "\n/** The command behind the \"Send to background agent\" code action. */\nexport const sendToAgentCommand = %q;\n", server.CommandSendToAgent)
	b.WriteString("\n/** The daemon's own JSON-RPC error codes. */\nexport const ErrorCodes = {\n")
	for _, c := range server.ErrorCodes {
		fmt.Fprintf(&b, "  %s: %d,\n", c.Name, c.Code)
	}
	b.WriteString("} as const;\n")
	return b.Bytes()
}

func luaType(t reflect.Type) string {
	switch {
	case t == timeType, t == durationType:
		return "string"
	case t == stateType:
		return "bgagents.State"
	case t == kindType:
		return "bgagents.EventKind"
	}
	switch t.Kind() {
	case reflect.Pointer:
		return luaType(t.Elem()) + "|nil"
	case reflect.Slice:
		inner := luaType(t.Elem())
		if strings.Contains(inner, "|") {
			inner = "(" + inner + ")"
		}
		return inner + "[]|nil"
	case reflect.Map:
		return "table<string, " + luaType(t.Elem()) + ">"
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int32, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float64:
		return "number"
	case reflect.Struct:
		if t.Name() == "" {
			return "table"
		}
		return "bgagents." + t.Name()
	}
	return "any"
}

func genLua(structs []structType) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "-- Code %s.\n\n", header)
	b.WriteString("---@alias bgagents.State")
	for _, s := range agents.AllStates {
		fmt.Fprintf(&b, "\n---| %q", string(s))
	}
	b.WriteString("\n\n---@alias bgagents.EventKind")
	for _, k := range providers.AllKinds {
		fmt.Fprintf(&b, "\n---| %q", string(k))
	}
	b.WriteString("\n\n")
	for _, st := range structs {
		fmt.Fprintf(&b, "---@class bgagents.%s\n", st.name)
		for _, f := range st.fields {
			opt := ""
			if f.optional {
				opt = "?"
			}
			fmt.Fprintf(&b, "---@field %s%s %s\n", f.name, opt, luaType(f.typ))
		}
		b.WriteString("\n")
	}
	b.WriteString("local M = {}\n\n")
	b.WriteString("-- Custom requests (client -> daemon): name -> method.\nM.requests = {\n")
	for _, m := range server.Requests {
		fmt.Fprintf(&b, "  %s = %q, -- %s -> %s\n", constName(m.Method), m.Method, orNone(typeName(m.Params)), typeName(m.Result))
	}
	b.WriteString("}\n\n-- Custom notifications (daemon -> client): name -> method.\nM.notifications = {\n")
	for _, m := range server.Notifications {
		fmt.Fprintf(&b, "  %s = %q, -- %s\n", constName(m.Method), m.Method, typeName(m.Params))
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "M.send_to_agent_command = %q\n\n", server.CommandSendToAgent)
	b.WriteString("M.states = {")
	for i, s := range agents.AllStates {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%q", string(s))
	}
	b.WriteString("}\n\n-- The daemon's own JSON-RPC error codes.\nM.error_codes = {\n")
	for _, c := range server.ErrorCodes {
		fmt.Fprintf(&b, "  %s = %d,\n", c.Name, c.Code)
	}
	b.WriteString("}\n\nreturn M\n")
	return b.Bytes()
}

func orNone(s string) string {
	if s == "" {
		return "{}"
	}
	return s
}
