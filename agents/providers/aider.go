package providers

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// aider runs Aider with one message:
//
//	aider --yes-always --no-pretty --no-stream ... --message=PROMPT
//
// Aider prints no structured events, so its console output is read line by
// line: "Applied edit to PATH" and the "Tokens: ..." report become events,
// everything else (the assistant's prose, "Commit abc1234 message", errors)
// is output. The assistant's final
// answer is not delimited, so there is no result event: the daemon takes
// the last output line.
//
// Aider commits its own edits (auto-commits stay on): its commits land on
// the agent's branch, and the daemon commits whatever is left at the end.
// By default Aider also adds ".aider*" to .gitignore, so its history and
// cache files in the worktree are not committed.
type aider struct{}

func init() { Register(aider{}) }

func (aider) Name() string { return "aider" }

func (aider) Install() string {
	return "install Aider: python -m pip install aider-install && aider-install (or python -m pip install aider-chat)"
}

// CanResume is false: Aider has no session id. A follow-up runs
// --message again in the same worktree; Aider reloads the previous chat
// (.aider.chat.history.md in the worktree) only with --restore-chat-history,
// which an agent may add to its args.
func (aider) CanResume() bool { return false }

var aiderPermissionModes = []string{"default", "acceptEdits", "plan", "bypassPermissions"}

// Command builds the argv. --yes-always answers Aider's questions (add
// this file? create it?); it never approves a shell command, which Aider
// asks with "explicit yes required", so no mode runs shell commands. A
// read-only run, or permission_mode "plan", uses the "ask" chat mode, which
// answers without editing. Aider has no turn limit: one message is one
// exchange (plus its reflections).
func (a aider) Command(spec Spec, t Task) ([]string, []string, error) {
	mode := spec.PermissionMode
	if mode != "" && !slices.Contains(aiderPermissionModes, mode) {
		return nil, nil, fmt.Errorf("agent %q: permission_mode %q is not valid for aider (allowed: %s)",
			spec.Name, mode, strings.Join(aiderPermissionModes, ", "))
	}
	if t.ReadOnly {
		mode = "plan"
	}
	name := spec.Binary
	if name == "" {
		name = "aider"
	}
	exe, err := LookPath(name, t.Worktree, a.Install())
	if err != nil {
		return nil, nil, err
	}
	model := t.Model
	if model == "" {
		model = spec.Model
	}
	argv := []string{exe, "--yes-always", "--no-pretty", "--no-stream", "--no-fancy-input",
		"--no-check-update", "--no-show-release-notes", "--no-analytics"}
	if model != "" {
		argv = append(argv, "--model", model)
	}
	if mode == "plan" {
		argv = append(argv, "--chat-mode", "ask")
	}
	et := t
	et.Model = model
	for _, arg := range spec.Args {
		argv = append(argv, Expand(arg, et))
	}
	// One argument: a message starting with "-" stays the message.
	argv = append(argv, "--message="+t.Prompt)
	return argv, EnvList(spec.Env), nil
}

func (aider) NewParser() Parser { return &aiderParser{} }

// aiderParser reads Aider's console output.
type aiderParser struct{}

var (
	aiderEditRe = regexp.MustCompile(`^Applied edit to (.+)$`)
	// Tokens: 4.5k sent, 1.2k cache write, 3.1k cache hit, 429 received. Cost: $0.0018 message, $0.0018 session.
	aiderTokensRe = regexp.MustCompile(`^Tokens: ([0-9.,]+[kKmM]?) sent` +
		`(?:, ([0-9.,]+[kKmM]?) cache write)?(?:, ([0-9.,]+[kKmM]?) cache (?:hit|read))?` +
		`, ([0-9.,]+[kKmM]?) received\.` +
		`(?:\s+Cost: \$([0-9.,]+) message, \$([0-9.,]+) session\.?)?\s*$`)
)

func (*aiderParser) Line(stream string, line []byte) []Event {
	text := strings.TrimRight(string(line), " \t\r")
	if strings.TrimSpace(text) == "" {
		return nil
	}
	if stream != "stdout" {
		return []Event{cliOutputEvent(stream, text)}
	}
	bare := strings.TrimSpace(text)
	if m := aiderEditRe.FindStringSubmatch(bare); m != nil {
		return []Event{{Time: time.Now(), Kind: KindToolCall, Tool: "edit", ToolKind: "edit", Path: strings.TrimSpace(m[1])}}
	}
	if m := aiderTokensRe.FindStringSubmatch(bare); m != nil {
		return []Event{{Time: time.Now(), Kind: KindUsage, Usage: aiderUsage(m)}}
	}
	return []Event{cliOutputEvent(stream, text)}
}

// aiderUsage is one message's usage from the token report. "sent" counts
// the whole prompt, cached parts included, so the cache figures are taken
// out of it. Counts of 1000 and more are rounded ("3.1k", "12k"); the cost
// is the "message" figure (the "session" one is the running total).
func aiderUsage(m []string) *Usage {
	sent, write, hit, recv := aiderCount(m[1]), aiderCount(m[2]), aiderCount(m[3]), aiderCount(m[4])
	return &Usage{
		InputTokens:      max(0, sent-write-hit),
		OutputTokens:     recv,
		CacheReadTokens:  hit,
		CacheWriteTokens: write,
		CostUSD:          aiderNumber(m[5]),
	}
}

// aiderCount reads "345", "1,234", "3.1k" or "1.2M".
func aiderCount(s string) int64 {
	s = strings.ReplaceAll(strings.TrimSpace(s), ",", "")
	if s == "" {
		return 0
	}
	mult := 1.0
	switch s[len(s)-1] {
	case 'k', 'K':
		mult, s = 1e3, s[:len(s)-1]
	case 'm', 'M':
		mult, s = 1e6, s[:len(s)-1]
	}
	f := aiderNumber(s) * mult
	if f > 1<<53 {
		return 1 << 53
	}
	return int64(f + 0.5)
}

func aiderNumber(s string) float64 {
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	if err != nil || f < 0 || f != f || f > 1e300 {
		return 0
	}
	return f
}
