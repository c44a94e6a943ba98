package worktree

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Fallback identity for commits made where git has none configured.
const (
	fallbackName  = "bgagents"
	fallbackEmail = "bgagents@localhost"
)

// Dirty reports whether the checkout at path has tracked changes or
// untracked files that are not ignored. Files setup commands left (see
// RecordSetupFiles) do not count while they are as setup left them.
func Dirty(ctx context.Context, path string) (bool, error) {
	rec, err := readSetupFiles(path)
	if err != nil {
		return false, fmt.Errorf("status of %s: %w", path, err)
	}
	if len(rec) > 0 {
		files, err := statusFiles(ctx, path, "--untracked-files=all")
		if err != nil {
			return false, fmt.Errorf("status of %s: %w", path, err)
		}
		return len(withoutSetupFiles(path, rec, files)) > 0, nil
	}
	out, _, err := run(ctx, path, runOpts{}, "status", "--porcelain", "-z", "--untracked-files=normal")
	if err != nil {
		return false, fmt.Errorf("status of %s: %w", path, err)
	}
	return len(out) > 0, nil
}

// DirtyFiles lists the paths `git status --porcelain` reports in path:
// changed tracked files (the new name for renames) and untracked files;
// an untracked directory is listed once, with a trailing '/'. Files setup
// commands left (see RecordSetupFiles) are not listed while they are as
// setup left them; untracked files are then listed one by one.
func DirtyFiles(ctx context.Context, path string) ([]string, error) {
	rec, err := readSetupFiles(path)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", path, err)
	}
	untracked := "--untracked-files=normal"
	if len(rec) > 0 {
		untracked = "--untracked-files=all"
	}
	files, err := statusFiles(ctx, path, untracked)
	if err != nil {
		return nil, fmt.Errorf("status of %s: %w", path, err)
	}
	return withoutSetupFiles(path, rec, files), nil
}

func statusFiles(ctx context.Context, path, untracked string) ([]string, error) {
	out, _, err := run(ctx, path, runOpts{}, "status", "--porcelain", "-z", untracked)
	if err != nil {
		return nil, err
	}
	return parseStatusZ(out), nil
}

// parseStatusZ parses `git status --porcelain -z` (v1): "XY path" entries,
// renames and copies followed by one more entry holding the old path.
func parseStatusZ(out []byte) []string {
	var files []string
	fields := splitNUL(out)
	for i := 0; i < len(fields); i++ {
		f := fields[i]
		if len(f) < 4 {
			continue
		}
		files = append(files, f[3:])
		if f[0] == 'R' || f[0] == 'C' || f[1] == 'R' || f[1] == 'C' {
			i++ // skip the old path
		}
	}
	return files
}

// CommitAll stages everything in the checkout at path (`git add -A`) and
// commits it with message, skipping hooks. Files setup commands left (see
// RecordSetupFiles) are left out while they are as setup left them. It returns false when there was
// nothing to commit. Without a configured identity it commits as
// bgagents <bgagents@localhost>.
func CommitAll(ctx context.Context, path, message string) (bool, error) {
	if strings.TrimSpace(message) == "" {
		return false, fmt.Errorf("commit in %s: empty commit message", path)
	}
	if _, err := Git(ctx, path, "add", "-A"); err != nil {
		return false, fmt.Errorf("commit in %s: %w", path, err)
	}
	if err := unstageSetupFiles(ctx, path); err != nil {
		return false, fmt.Errorf("commit in %s: %w", path, err)
	}
	_, code, err := run(ctx, path, runOpts{ok: []int{1}}, "diff", "--cached", "--quiet", "--no-ext-diff")
	if err != nil {
		return false, fmt.Errorf("commit in %s: %w", path, err)
	}
	if code == 0 {
		return false, nil
	}
	env, err := identityEnv(ctx, path)
	if err != nil {
		return false, fmt.Errorf("commit in %s: %w", path, err)
	}
	_, _, err = run(ctx, path, runOpts{stdin: strings.NewReader(message), env: env},
		"commit", "--no-verify", "--quiet", "-F", "-")
	if err != nil {
		return false, fmt.Errorf("commit in %s: %w", path, err)
	}
	return true, nil
}

// identityEnv returns GIT_AUTHOR_* / GIT_COMMITTER_* entries for whichever
// identity git cannot determine in dir, and nothing when both are set.
func identityEnv(ctx context.Context, dir string) ([]string, error) {
	var env []string
	for _, who := range []string{"AUTHOR", "COMMITTER"} {
		_, err := Git(ctx, dir, "var", "GIT_"+who+"_IDENT")
		var ge *GitError
		switch {
		case err == nil:
			continue
		case errors.As(err, &ge):
			env = append(env,
				"GIT_"+who+"_NAME="+fallbackName,
				"GIT_"+who+"_EMAIL="+fallbackEmail)
		default:
			return nil, fmt.Errorf("check %s identity: %w", strings.ToLower(who), err)
		}
	}
	return env, nil
}

// Snapshot returns the tree a `git add -A && git commit` in the worktree at
// path would record (tracked and untracked files, .gitignore respected),
// and whether it differs from HEAD's tree. It uses a private copy of the
// index, so the worktree, its index and its refs are left untouched; the
// copied stat cache keeps it incremental on large checkouts.
func Snapshot(ctx context.Context, path string) (tree string, dirty bool, err error) {
	headTree, err := Git(ctx, path, "rev-parse", "--verify", "--quiet", "HEAD^{tree}")
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	indexPath, err := Git(ctx, path, "rev-parse", "--path-format=absolute", "--git-path", "index")
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(indexPath), "bgagents-snapshot-*.index")
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName)
	src, err := os.Open(indexPath)
	switch {
	case err == nil:
		_, err = io.Copy(tmp, src)
		src.Close()
	case errors.Is(err, os.ErrNotExist):
		err = nil // a fresh worktree without an index yet
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: copy index: %w", path, err)
	}
	env := runOpts{env: []string{"GIT_INDEX_FILE=" + tmpName}}
	if _, _, err := run(ctx, path, env, "add", "-A", "--", "."); err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	// What setup left, unchanged since, is not the agent's work.
	if err := unstageSetupFiles(ctx, path, env.env...); err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	out, _, err := run(ctx, path, env, "write-tree")
	if err != nil {
		return "", false, fmt.Errorf("snapshot %s: %w", path, err)
	}
	tree = trimNL(out)
	return tree, tree != headTree, nil
}
