// Package nvim_test runs the Neovim plugin's Lua tests (test/*_spec.lua)
// in real headless Neovim 0.7.2 and 0.10.4, the scenario and the landing
// spec (reviews, conflicts, push, pull requests, fan-outs, pipelines)
// against the real daemon with scripted agents. `bash .ci/install-neovim`
// installs both versions; a missing one is skipped, saying so.
package nvim_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bgagents/bgagents/internal/testenv"
)

func TestMain(m *testing.M) {
	testenv.Setup()
	code := m.Run()
	testenv.Cleanup()
	os.Exit(code)
}

// pluginDir is extensions/nvim, the plugin's runtimepath entry.
func pluginDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// neovims are the versions the plugin supports and is tested in: Debian
// stable's and a current release. envVar overrides where it is.
var neovims = []struct {
	version string
	envVar  string
	paths   []string
}{
	{"0.7.2", "BGAGENTS_NVIM_0_7", []string{"/usr/bin/nvim", "nvim"}},
	{"0.10.4", "BGAGENTS_NVIM_0_10", []string{filepath.Join(pluginDir(), "..", "..", ".cache", "nvim-0.10.4", "bin", "nvim")}},
}

// findNeovim returns the path of Neovim `version`, or skips the test.
func findNeovim(t *testing.T, version, envVar string, paths []string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		paths = []string{p}
	}
	var seen []string
	for _, p := range paths {
		path, err := exec.LookPath(p)
		if err != nil {
			seen = append(seen, p+": not found")
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(ctx, path, "--version").Output()
		cancel()
		first, _, _ := strings.Cut(string(out), "\n")
		if err == nil && strings.TrimSpace(first) == "NVIM v"+version {
			return path
		}
		seen = append(seen, fmt.Sprintf("%s: %q %v", p, strings.TrimSpace(first), err))
	}
	t.Skipf("Neovim %s is not installed (%s); run `bash .ci/install-neovim` (or set %s)", version, strings.Join(seen, "; "), envVar)
	return ""
}

// agentScript is the scripted agent: it records its prompt (the task and
// any editor context) in NOTES.md. A prompt "wait FILE" first waits, at
// most a minute, until FILE exists, so a test can watch it run and then
// let it finish; "fail WHY" fails with WHY on stderr.
const agentScript = `#!/bin/sh
echo "working on: $1"
case "$1" in
"fail "*)
	echo "giving up: ${1#fail }" >&2
	exit 3
	;;
"wait "*)
	f=$(printf '%s\n' "${1#wait }" | head -n 1)
	echo "waiting for $f"
	i=0
	while [ ! -e "$f" ] && [ "$i" -lt 600 ]; do
		sleep 0.1
		i=$((i + 1))
	done
	echo "done waiting"
	;;
esac
printf '%s\n' "$1" >>NOTES.md
echo done
`

// makeRepo creates a repository whose agents "script" (the default) and
// "alt" run agentScript.
func makeRepo(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(filepath.Join(dir, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "tools", "agent.sh")
	files := map[string]string{
		script:                               agentScript,
		filepath.Join(dir, "calc.txt"):       "line one\nline two\nline three\n",
		filepath.Join(dir, ".bgagents.toml"): fmt.Sprintf("[defaults]\nagent = \"script\"\n\n[agents.script]\ncommand = [%q, \"{prompt}\"]\n\n[agents.alt]\ncommand = [%[1]q, \"{prompt}\"]\n", script),
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "a repository with a script agent")
	return dir
}

// reviewAnswer is what the test reviewer (the scripted test agent run as
// the claude CLI) prints: one line of Claude's stream-json, a result whose
// text ends with the JSON verdict the daemon asks reviewers for.
func reviewAnswer(t *testing.T) string {
	t.Helper()
	verdict := `{"verdict":"request_changes","summary":"shared.txt keeps one side only","findings":[{"file":"shared.txt","line":1,"severity":"high","message":"keep both sides"}]}`
	b, err := json.Marshal(map[string]any{
		"type": "result", "subtype": "success", "is_error": false, "num_turns": 1,
		"result":     "The change drops a side.\n```json\n" + verdict + "\n```",
		"session_id": "nvim-review",
	})
	if err != nil {
		t.Fatal(err)
	}
	// testagent splits its script on ';' and blanks.
	if bytes.ContainsAny(b, ";") || bytes.Contains(b, []byte("  ")) {
		t.Fatalf("the review answer must not contain ';' or double blanks: %s", b)
	}
	return string(b)
}

// makeLandingRepo creates a repository for the landing spec whose agents
// are the scripted test agent (internal/testagent; a task is its script):
// "ta" (the default) and "alt" run the task; where the daemon writes the
// prompt, the script comes from TESTAGENT_SCRIPT: "step" (a pipeline
// step) waits for stepGate, then writes step2.txt; "resolver" (an
// integration) writes resolved.txt; "claude" (the [review] agent) answers
// with reviewAnswer.
func makeLandingRepo(t *testing.T, stepGate string) string {
	t.Helper()
	ta := testenv.TestAgent(t)
	dir := filepath.Join(t.TempDir(), "repo")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`[defaults]
agent = "ta"
max_concurrent = 8

[review]
agent = "claude"

[agents.ta]
command = [%[1]q, "{prompt}"]

[agents.alt]
command = [%[1]q, "{prompt}"]

[agents.step]
command = [%[1]q, "{prompt}"]
env = { TESTAGENT_SCRIPT = '''waitfile %[2]s; write step2.txt two''' }

[agents.resolver]
command = [%[1]q, "{prompt}"]
env = { TESTAGENT_SCRIPT = '''write resolved.txt ok''' }

[agents.claude]
binary = %[1]q
env = { TESTAGENT_SCRIPT = '''json %[3]s''' }
`, ta, stepGate, reviewAnswer(t))
	files := map[string]string{
		filepath.Join(dir, ".bgagents.toml"): cfg,
		filepath.Join(dir, "README.md"):      "# landing\n",
	}
	for path, text := range files {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "a repository with scripted agents")
	return dir
}

// fakeGH writes a stand-in for the GitHub CLI into a new directory (gh
// cannot reach GitHub here; the push before it is real): it appends its
// arguments to the file `calls`, succeeds for `auth status`, and prints a
// pull request URL for `pr create`.
func fakeGH(t *testing.T) (dir, calls string) {
	t.Helper()
	dir = t.TempDir()
	calls = filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$*\" >>" + calls + "\nif [ \"$1\" = auth ]; then exit 0; fi\ncat >/dev/null\necho https://github.com/acme/app/pull/7\n"
	if err := os.WriteFile(filepath.Join(dir, "gh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir, calls
}

// stopDaemon stops the daemon whose state directory is home.
func stopDaemon(t *testing.T, bin, home string) {
	t.Helper()
	stop := exec.Command(bin, "daemon", "--stop")
	stop.Env = append(os.Environ(), "BGAGENTS_HOME="+home)
	if out, err := stop.CombinedOutput(); err != nil {
		t.Errorf("bgagents daemon --stop: %v\n%s", err, out)
	}
}

// runSpec runs test/<spec>_spec.lua in nvim and fails with its output.
func runSpec(t *testing.T, nvim, spec string, env []string, timeout time.Duration) {
	t.Helper()
	dir := pluginDir()
	state := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nvim, "--headless", "-u", "NONE", "-i", "NONE", "-n",
		"--cmd", "set rtp^="+dir,
		"-c", "luafile "+filepath.Join(dir, "test", "run.lua"))
	cmd.Dir = state
	cmd.Env = append(os.Environ(),
		"BGAGENTS_TEST_SPEC="+spec,
		"BGAGENTS_TEST_DOC="+filepath.Join(dir, "doc", "bgagents.txt"),
		"XDG_CONFIG_HOME="+filepath.Join(state, "config"),
		"XDG_DATA_HOME="+filepath.Join(state, "data"),
		"XDG_STATE_HOME="+filepath.Join(state, "state"),
		"XDG_CACHE_HOME="+filepath.Join(state, "cache"),
		"NVIM_LOG_FILE="+filepath.Join(state, "nvim.log"),
	)
	cmd.Env = append(cmd.Env, env...)
	// Its own process group, so a timeout ends nvim and what it started
	// (the `bgagents lsp` relays); the daemon has its own session.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.Stdin = nil
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s_spec.lua did not finish within %s; its output:\n%s", spec, timeout, out.String())
	}
	if err != nil {
		t.Fatalf("%s_spec.lua failed (%v); its output:\n%s", spec, err, out.String())
	}
	if !strings.Contains(out.String(), " passed, 0 failed") {
		t.Fatalf("%s_spec.lua printed no summary; its output:\n%s", spec, out.String())
	}
	t.Logf("%s_spec.lua passed in %s:\n%s", spec, time.Since(start).Round(time.Millisecond), out.String())
}

func TestNeovim(t *testing.T) {
	for _, nv := range neovims {
		t.Run(nv.version, func(t *testing.T) {
			t.Parallel()
			nvim := findNeovim(t, nv.version, nv.envVar, nv.paths)
			bin := testenv.Bgagents(t)
			repo := makeRepo(t)

			t.Run("unit", func(t *testing.T) {
				runSpec(t, nvim, "unit", []string{"BGAGENTS_TEST_REPO=" + repo}, 60*time.Second)
			})

			t.Run("scenario", func(t *testing.T) {
				home := t.TempDir()
				t.Cleanup(func() {
					// Agents have ended by now; stop this test's daemon.
					stopDaemon(t, bin, home)
				})
				runSpec(t, nvim, "scenario", []string{
					"BGAGENTS_HOME=" + home,
					"BGAGENTS_TEST_BIN=" + bin,
					"BGAGENTS_TEST_REPO=" + repo,
					"BGAGENTS_TEST_TMP=" + t.TempDir(),
				}, 90*time.Second)
			})

			// Reviews, conflicts, push and pull requests, fan-outs,
			// pipelines and integration, in a repository of its own.
			t.Run("landing", func(t *testing.T) {
				home, gates := t.TempDir(), t.TempDir()
				gate, stepGate := filepath.Join(gates, "first-step"), filepath.Join(gates, "second-step")
				repo := makeLandingRepo(t, stepGate)
				ghDir, ghCalls := fakeGH(t)
				t.Cleanup(func() {
					// Agents still waiting (after a failed spec) end once
					// their gates exist, with or without the daemon.
					for _, g := range []string{gate, stepGate} {
						if err := os.WriteFile(g, nil, 0o644); err != nil {
							t.Error(err)
						}
					}
					stopDaemon(t, bin, home)
				})
				runSpec(t, nvim, "landing", []string{
					"BGAGENTS_HOME=" + home,
					"BGAGENTS_TEST_BIN=" + bin,
					"BGAGENTS_TEST_REPO=" + repo,
					"BGAGENTS_TEST_TMP=" + t.TempDir(),
					"BGAGENTS_TEST_GATE=" + gate,
					"BGAGENTS_TEST_STEP_GATE=" + stepGate,
					"BGAGENTS_TEST_GH_CALLS=" + ghCalls,
					// the daemon this spec starts finds the stand-in gh first
					"PATH=" + ghDir + string(os.PathListSeparator) + os.Getenv("PATH"),
				}, 120*time.Second)
			})
		})
	}
}
