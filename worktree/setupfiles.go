package worktree

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Files that setup commands leave in a worktree and git does not ignore
// (a generated file nobody put in .gitignore, a lock file an install
// rewrote) are not the agent's work. RecordSetupFiles notes them, with a
// fingerprint of their content, in the worktree's own git directory; from
// then on CommitAll leaves out those whose content is still what setup
// left, and Dirty, DirtyFiles and Remove do not count them as uncommitted
// work. A file the agent (or anyone) changes afterwards is committed like
// any other.

// setupFilesName is the record's name in a linked worktree's own git
// directory (.git/worktrees/NAME): it moves with `git worktree move` and
// goes when the worktree is removed.
const setupFilesName = "bgagents-setup-files"

// FileStates maps paths relative to the top of a worktree, as git prints
// them (slash-separated), to a fingerprint of what is there: "-" for
// nothing, "l TARGET" for a symlink, "f" or "x" (executable) and the
// SHA-256 of the content for a regular file, "d" for a directory.
type FileStates map[string]string

// UncommittedFiles returns the paths `git status` reports in the worktree at
// path — changed or deleted tracked files and untracked files that are not
// ignored, each file listed on its own — with their fingerprints.
func UncommittedFiles(ctx context.Context, path string) (FileStates, error) {
	files, err := statusFiles(ctx, path, "--untracked-files=all")
	if err != nil {
		return nil, fmt.Errorf("changed files in %s: %w", path, err)
	}
	st := FileStates{}
	for _, f := range files {
		st[f] = fingerprint(filepath.Join(path, filepath.FromSlash(f)))
	}
	return st, nil
}

// RecordSetupFiles records the files of the worktree at path that setup
// commands made or changed and git does not ignore: what UncommittedFiles
// reports now and did not report, or reported in another state, in
// before (UncommittedFiles taken before the setup). It returns their paths,
// sorted; with none, any earlier record is removed.
func RecordSetupFiles(ctx context.Context, path string, before FileStates) ([]string, error) {
	after, err := UncommittedFiles(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("record setup files: %w", err)
	}
	rec := FileStates{}
	for p, fp := range after {
		if old, ok := before[p]; !ok || old != fp {
			rec[p] = fp
		}
	}
	file, err := setupFilesPath(path)
	if err != nil {
		return nil, fmt.Errorf("record setup files: %w", err)
	}
	if len(rec) == 0 {
		if err := os.Remove(file); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("record setup files: %w", err)
		}
		return nil, nil
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("record setup files: %w", err)
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return nil, fmt.Errorf("record setup files: %w", err)
	}
	if err := os.Rename(tmp, file); err != nil {
		_ = os.Remove(tmp)
		return nil, fmt.Errorf("record setup files: %w", err)
	}
	paths := make([]string, 0, len(rec))
	for p := range rec {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	return paths, nil
}

// SetupFiles returns the recorded setup files of the worktree at path
// whose state is still the one recorded, sorted.
func SetupFiles(path string) ([]string, error) {
	rec, err := readSetupFiles(path)
	if err != nil || len(rec) == 0 {
		return nil, err
	}
	var out []string
	for p, fp := range rec {
		if fingerprint(filepath.Join(path, filepath.FromSlash(p))) == fp {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out, nil
}

// setupFilesPath returns where the record of the worktree at path lives:
// in the git directory its .git file names (the main worktree's .git
// directory otherwise).
func setupFilesPath(path string) (string, error) {
	dotGit := filepath.Join(path, ".git")
	fi, err := os.Lstat(dotGit)
	if err != nil {
		return "", err
	}
	if fi.IsDir() {
		return filepath.Join(dotGit, setupFilesName), nil
	}
	data, err := os.ReadFile(dotGit)
	if err != nil {
		return "", err
	}
	dir, ok := strings.CutPrefix(strings.TrimSpace(string(data)), "gitdir:")
	if !ok {
		return "", fmt.Errorf("%s is not a gitdir file", dotGit)
	}
	dir = strings.TrimSpace(dir)
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(path, dir)
	}
	return filepath.Join(dir, setupFilesName), nil
}

// readSetupFiles reads the record of the worktree at path; nil when there
// is none.
func readSetupFiles(path string) (FileStates, error) {
	file, err := setupFilesPath(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, fmt.Errorf("read setup files: %w", err)
	}
	data, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read setup files: %w", err)
	}
	var rec FileStates
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("read setup files %s: %w", file, err)
	}
	return rec, nil
}

// withoutSetupFiles drops from files (paths as git status prints them)
// the recorded setup files still in their recorded state.
func withoutSetupFiles(path string, rec FileStates, files []string) []string {
	if len(rec) == 0 {
		return files
	}
	return slices.DeleteFunc(files, func(f string) bool {
		fp, ok := rec[f]
		return ok && fingerprint(filepath.Join(path, filepath.FromSlash(f))) == fp
	})
}

// unstageSetupFiles takes the recorded setup files still in their recorded
// state out of the index again after a `git add -A`: the index keeps
// HEAD's version (or no entry), so a commit leaves them out. env may name
// another index (GIT_INDEX_FILE).
func unstageSetupFiles(ctx context.Context, path string, env ...string) error {
	keep, err := SetupFiles(path)
	if err != nil || len(keep) == 0 {
		return err
	}
	var list bytes.Buffer
	for _, p := range keep {
		list.WriteString(p)
		list.WriteByte(0)
	}
	_, _, err = run(ctx, path, runOpts{stdin: &list, env: env},
		"--literal-pathspecs", "reset", "--quiet", "--pathspec-from-file=-", "--pathspec-file-nul")
	if err != nil {
		return fmt.Errorf("leave out files setup made: %w", err)
	}
	return nil
}

// fingerprint describes what is at p (see FileStates).
func fingerprint(p string) string {
	fi, err := os.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "-"
	case err != nil:
		return "? " + err.Error()
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return "? " + err.Error()
		}
		return "l " + target
	case fi.IsDir():
		return "d"
	case !fi.Mode().IsRegular():
		return "o"
	}
	f, err := os.Open(p)
	if err != nil {
		return "? " + err.Error()
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "? " + err.Error()
	}
	kind := "f"
	if fi.Mode()&0o111 != 0 {
		kind = "x"
	}
	return kind + " " + hex.EncodeToString(h.Sum(nil))
}
