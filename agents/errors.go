package agents

import (
	"errors"
	"fmt"

	"github.com/bgagents/bgagents/agents/providers"
)

// Kinds of failure the supervisor reports. Callers test with errors.Is; the
// server maps each kind to a JSON-RPC error code.
var (
	// ErrInvalid: the request itself is wrong (a bad name, an unknown ref).
	ErrInvalid = errors.New("invalid request")
	// ErrAmbiguous: a reference matched several agents.
	ErrAmbiguous = errors.New("ambiguous agent reference")
	// ErrState: the agent is not in a state that allows this.
	ErrState = errors.New("agent is in the wrong state")
	// ErrRefused: doing it would lose work; --force overrides.
	ErrRefused = errors.New("refused: work would be lost")
	// ErrConflict: the merge would conflict.
	ErrConflict = errors.New("merge conflict")
	// ErrUnavailable: the agent CLI is not installed.
	ErrUnavailable = providers.ErrNotInstalled
	// ErrConfig: the configuration is invalid.
	ErrConfig = errors.New("invalid configuration")
	// ErrNotRepo: the directory is not in a git repository.
	ErrNotRepo = errors.New("not a git repository")
	// ErrExternal: a tool outside bgagents (git push, gh) is missing or
	// failed.
	ErrExternal = errors.New("external tool failed")
)

// kindError carries a message for people and a kind for programs.
type kindError struct {
	kind error
	msg  string
	err  error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Is(target error) bool { return target == e.kind }

func (e *kindError) Unwrap() error { return e.err }

// Errorf makes an error of the given kind; %w in format wraps as usual.
func Errorf(kind error, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &kindError{kind: kind, msg: err.Error(), err: errors.Unwrap(err)}
}

// Is lets AmbiguousError match ErrAmbiguous.
func (e *AmbiguousError) Is(target error) bool { return target == ErrAmbiguous }
