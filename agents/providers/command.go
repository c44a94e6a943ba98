package providers

import (
	"fmt"
	"time"
)

// command runs any program declared with `command = [...]` in config. Its
// output lines become output events; the last non-empty stdout line is the
// result.
type command struct{}

func init() { Register(command{}) }

func (command) Name() string { return "command" }

func (command) Install() string {
	return "check the command in [agents.NAME] of .bgagents.toml"
}

func (c command) Command(spec Spec, t Task) ([]string, []string, error) {
	if t.ReadOnly {
		return nil, nil, fmt.Errorf("agent %q runs a plain command, which has no read-only mode; use a vendor agent (claude, codex, gemini, opencode, copilot) for read-only runs", spec.Name)
	}
	if len(spec.Command) == 0 {
		return nil, nil, fmt.Errorf("agent %q has no command: set command = [\"program\", \"{prompt}\"] in [agents.%s]", spec.Name, spec.Name)
	}
	argv := make([]string, 0, len(spec.Command)+len(spec.Args))
	for _, a := range spec.Command {
		argv = append(argv, Expand(a, t))
	}
	for _, a := range spec.Args {
		argv = append(argv, Expand(a, t))
	}
	exe, err := LookPath(argv[0], t.Worktree, c.Install())
	if err != nil {
		return nil, nil, err
	}
	argv[0] = exe
	return argv, EnvList(spec.Env), nil
}

func (command) NewParser() Parser { return &lineParser{} }

// CanResume is false: a follow-up runs the command again with the message
// as {prompt}, in the same worktree.
func (command) CanResume() bool { return false }

// lineParser makes one output event per line.
type lineParser struct{}

func (*lineParser) Line(stream string, line []byte) []Event {
	return []Event{{Time: time.Now(), Kind: KindOutput, Stream: stream, Text: string(line)}}
}
