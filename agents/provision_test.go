package agents

import (
	"slices"
	"strings"
	"testing"
)

// Database copy names carry the agent's id (two repositories or daemons
// copying one template never collide) and fit PostgreSQL's 63 bytes.
func TestAgentDatabaseName(t *testing.T) {
	a := &Agent{ID: "0123456789ab", Name: "fix"}
	b := &Agent{ID: "ba9876543210", Name: "fix"}
	na, err := agentDatabaseName("postgres://localhost/app_dev", a)
	if err != nil {
		t.Fatal(err)
	}
	nb, _ := agentDatabaseName("postgres://localhost/app_dev", b)
	if na != "app_dev_fix_0123456789ab" || na == nb {
		t.Errorf("names %q, %q", na, nb)
	}
	long := &Agent{ID: "0123456789ab", Name: strings.Repeat("very-long-name-", 6)}
	n, err := agentDatabaseName("host=/tmp dbname="+strings.Repeat("t", 50), long)
	if err != nil || len(n) != 63 || !strings.HasSuffix(n, "_0123456789ab") {
		t.Errorf("long name %q (%d bytes), %v", n, len(n), err)
	}
	if n, _ := agentDatabaseName("postgres://localhost/?dbname=App-Dev", a); n != "app_dev_fix_0123456789ab" {
		t.Errorf("dbname parameter: %q", n)
	}
}

// Pool setup inherits the daemon's environment without the variables that
// name an agent's resources, nor git's pointers to another repository.
func TestDaemonEnvForPoolSetup(t *testing.T) {
	for _, kv := range [][2]string{{"PORT", "3000"}, {"DATABASE_URL", "postgres://me/dev"}, {"BGAGENTS_DATABASE_URL", "x"},
		{"BGAGENTS_PORT", "1"}, {"BGAGENTS_PORT_COUNT", "2"}, {"GIT_DIR", "/elsewhere/.git"}, {"KEEP_ME", "1"}} {
		t.Setenv(kv[0], kv[1])
	}
	names := func(env []string) []string {
		var out []string
		for _, kv := range env {
			n, _, _ := strings.Cut(kv, "=")
			out = append(out, n)
		}
		return out
	}
	pool := names(daemonEnv(true))
	for _, gone := range []string{"PORT", "DATABASE_URL", "BGAGENTS_DATABASE_URL", "BGAGENTS_PORT", "BGAGENTS_PORT_COUNT", "GIT_DIR"} {
		if slices.Contains(pool, gone) {
			t.Errorf("pool setup environment has %s", gone)
		}
	}
	if !slices.Contains(pool, "KEEP_ME") {
		t.Error("pool setup environment lost KEEP_ME")
	}
	agent := names(daemonEnv(false))
	if slices.Contains(agent, "GIT_DIR") || !slices.Contains(agent, "DATABASE_URL") {
		t.Errorf("agent environment: GIT_DIR kept or DATABASE_URL dropped: %v", agent)
	}
}
