package agents

import (
	"slices"
	"strings"
	"testing"

	"github.com/bgagents/bgagents/worktree/provision"
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

// The template's name is read the way pgx (and so the copy) reads it:
// libpq-style URLs that name it only in the dbname parameter, keyword/value
// DSNs with quoted values and spaces around '=', and $PGDATABASE.
func TestAgentDatabaseNameReadsTheURLAsPgxDoes(t *testing.T) {
	a := &Agent{ID: "0123456789ab", Name: "fix"}
	for _, tc := range []struct{ url, want string }{
		{"postgres:///?host=/tmp&dbname=app_dev", "app_dev_fix_0123456789ab"},
		{"postgresql://me@localhost:5433?sslmode=disable&dbname=app_dev", "app_dev_fix_0123456789ab"},
		{"postgres://localhost/ignored?dbname=app_dev", "app_dev_fix_0123456789ab"},
		{"host=/tmp dbname = 'app_dev' user=me", "app_dev_fix_0123456789ab"},
		{"host=/tmp dbname='app dev'", "app_dev_fix_0123456789ab"},
	} {
		got, err := agentDatabaseName(tc.url, a)
		if err != nil || got != tc.want {
			t.Errorf("%q: %q, %v; want %q", tc.url, got, err, tc.want)
			continue
		}
		// The copy is made, and dropped, under the name the URL then has.
		u, err := provision.AgentURL(tc.url, got)
		if err != nil {
			t.Errorf("%q: AgentURL: %v", tc.url, err)
		} else if n, err := provision.TemplateDatabase(u); err != nil || n != got {
			t.Errorf("%q: the agent's url %q names %q, %v; want %q", tc.url, u, n, err, got)
		}
	}
	t.Setenv("PGDATABASE", "from_env")
	if got, err := agentDatabaseName("postgres://localhost", a); err != nil || got != "from_env_fix_0123456789ab" {
		t.Errorf("with PGDATABASE: %q, %v", got, err)
	}
	t.Setenv("PGDATABASE", "")
	if _, err := agentDatabaseName("postgres://localhost", a); err == nil || !strings.Contains(err.Error(), "names no database") {
		t.Errorf("no database: %v", err)
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
