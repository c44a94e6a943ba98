package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, path, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRepoConfigOverridesUserConfig(t *testing.T) {
	dir := t.TempDir()
	user := filepath.Join(dir, "user.toml")
	t.Setenv("BGAGENTS_CONFIG", user)
	write(t, user, "[defaults]\nagent = \"mine\"\nmax_concurrent = 2\ntimeout = \"10m\"\n[agents.mine]\ncommand = [\"my-agent\", \"{prompt}\"]\n")
	repo := filepath.Join(dir, "repo")
	write(t, filepath.Join(repo, RepoFile), "[defaults]\nmax_concurrent = 6\ncleanup_unchanged = false\n[worktree]\ndir = \"/tmp/wt/{repo}\"\n")
	c, err := Load(repo)
	if err != nil {
		t.Fatal(err)
	}
	if c.DefaultAgent() != "mine" || c.MaxConcurrent() != 6 || time.Duration(c.Defaults.Timeout) != 10*time.Minute || c.CleanupUnchanged() {
		t.Fatalf("merged config %+v", c.Defaults)
	}
	if got := c.WorktreeDir(repo); got != "/tmp/wt/repo" {
		t.Errorf("worktree dir %s", got)
	}
	spec, err := c.Spec("mine")
	if err != nil || spec.Provider != "command" || spec.Command[0] != "my-agent" {
		t.Errorf("spec %+v %v", spec, err)
	}
	if _, err := c.Spec("other"); err == nil || !strings.Contains(err.Error(), "[agents.other]") {
		t.Errorf("unknown agent: %v", err)
	}
}

func TestConfigErrorsNameKeyAndFile(t *testing.T) {
	t.Setenv("BGAGENTS_CONFIG", filepath.Join(t.TempDir(), "none.toml"))
	cases := map[string]string{
		"[defaults]\nagnet = \"x\"\n":                        "defaults.agnet",
		"[defaults]\ntimeout = \"soon\"\n":                   "soon",
		"[defaults]\nmax_concurrent = 0\n":                   "max_concurrent",
		"[agents.x]\nprovider = \"nosuch\"\n":                "nosuch",
		"[agents.x]\ncommand = []\nprovider = \"command\"\n": "command",
		"[agents.\"bad name\"]\ncommand = [\"a\"]\n":         "bad name",
		"[worktree]\ndri = \"x\"\n":                          "worktree.dri",
		"not toml at all":                                    RepoFile,
	}
	for body, want := range cases {
		repo := t.TempDir()
		write(t, filepath.Join(repo, RepoFile), body)
		_, err := Load(repo)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want it to mention %q", body, err, want)
		}
		if err != nil && want != "nosuch" && want != "command" && !strings.Contains(err.Error(), RepoFile) {
			t.Errorf("config %q: error %v does not name the file", body, err)
		}
	}
}

// database.path must stay inside the repository once cleaned, and
// worktree.setup_timeout defaults to 10 minutes.
func TestDatabasePathAndSetupTimeout(t *testing.T) {
	t.Setenv("BGAGENTS_CONFIG", filepath.Join(t.TempDir(), "none.toml"))
	for body, want := range map[string]string{
		"[database]\nkind = \"sqlite\"\npath = \"db/../../x.sqlite3\"\n": "inside the repository",
		"[database]\nkind = \"sqlite\"\npath = \"../x.sqlite3\"\n":       "inside the repository",
		"[database]\nkind = \"sqlite\"\npath = \"/tmp/x.sqlite3\"\n":     "inside the repository",
		"[database]\nkind = \"sqlite\"\npath = \"db/..\"\n":              "inside the repository",
		"[worktree]\nsetup_timeout = \"0s\"\n":                           "setup_timeout",
	} {
		repo := t.TempDir()
		write(t, filepath.Join(repo, RepoFile), body)
		if _, err := Load(repo); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("config %q: error %v, want it to mention %q", body, err, want)
		}
	}
	repo := t.TempDir()
	write(t, filepath.Join(repo, RepoFile), "[database]\nkind = \"sqlite\"\npath = \"db/../var/dev.sqlite3\"\n")
	c, err := Load(repo)
	if err != nil {
		t.Fatal(err)
	}
	if c.SetupTimeout() != DefaultSetupTimeout || DefaultSetupTimeout != 10*time.Minute {
		t.Errorf("setup timeout %v", c.SetupTimeout())
	}
	write(t, filepath.Join(repo, RepoFile), "[worktree]\nsetup_timeout = \"90s\"\n")
	if c, err = Load(repo); err != nil || c.SetupTimeout() != 90*time.Second {
		t.Errorf("setup timeout %v, %v", c.SetupTimeout(), err)
	}
}
