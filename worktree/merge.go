package worktree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// MergeOptions tunes Merge. An empty Message gets a default one.
type MergeOptions struct {
	Squash  bool   // one parent (base): the branch's changes as one commit
	Message string // commit message
}

// ConflictError is returned by Merge when branch does not merge cleanly
// into base; nothing was changed.
type ConflictError struct {
	Base   string
	Branch string
	Files  []string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("merging %s into %s would conflict in: %s",
		e.Branch, e.Base, strings.Join(e.Files, ", "))
}

// DirtyError is returned by Merge when base is checked out at Path and
// that checkout has changes the merge could overwrite; nothing was changed.
type DirtyError struct {
	Path  string
	Files []string
}

func (e *DirtyError) Error() string {
	files := e.Files
	more := ""
	if len(files) > 10 {
		more = fmt.Sprintf(" and %d more", len(files)-10)
		files = files[:10]
	}
	return fmt.Sprintf("the checkout at %s has uncommitted changes (%s%s); commit or stash them, then merge again",
		e.Path, strings.Join(files, ", "), more)
}

// Merge lands branch into the local branch base without a worktree of its
// own: the merge is computed with `git merge-tree --write-tree`, committed
// with `git commit-tree` (parents base and, unless squashing, branch), and
// then base is moved: with `git merge --ff-only` inside the worktree that
// has base checked out (so its files follow), or with a compare-and-swap
// `git update-ref` when none has. It returns base's new commit. A branch
// that is already merged returns base's commit unchanged.
func Merge(ctx context.Context, repo, base, branch string, opt MergeOptions) (string, error) {
	sha, err := merge(ctx, repo, base, branch, opt)
	if err != nil {
		return "", fmt.Errorf("merge %s into %s: %w", branch, base, err)
	}
	return sha, nil
}

func merge(ctx context.Context, repo, base, branch string, opt MergeOptions) (string, error) {
	if err := ValidateBranchName(base); err != nil {
		return "", err
	}
	baseSha, err := ResolveCommit(ctx, repo, "refs/heads/"+base)
	if err != nil {
		return "", err
	}
	branchSha, err := resolveBranch(ctx, repo, branch)
	if err != nil {
		return "", err
	}
	merged, err := IsAncestor(ctx, repo, branchSha, baseSha)
	if err != nil {
		return "", err
	}
	if merged {
		return baseSha, nil
	}
	tree, conflicts, err := mergeTree(ctx, repo, baseSha, branchSha)
	if err != nil {
		return "", err
	}
	if len(conflicts) > 0 {
		return "", &ConflictError{Base: base, Branch: branch, Files: conflicts}
	}
	if opt.Squash {
		baseTree, err := Git(ctx, repo, "rev-parse", "--verify", baseSha+"^{tree}")
		if err != nil {
			return "", err
		}
		if baseTree == tree {
			return baseSha, nil // already squash-merged: nothing to add
		}
	}
	msg := opt.Message
	if strings.TrimSpace(msg) == "" {
		msg, err = defaultMergeMessage(ctx, repo, base, branch, baseSha, branchSha, opt.Squash)
		if err != nil {
			return "", err
		}
	}
	env, err := identityEnv(ctx, repo)
	if err != nil {
		return "", err
	}
	args := []string{"commit-tree", tree, "-p", baseSha}
	if !opt.Squash {
		args = append(args, "-p", branchSha)
	}
	args = append(args, "-F", "-")
	out, _, err := run(ctx, repo, runOpts{stdin: strings.NewReader(msg), env: env}, args...)
	if err != nil {
		return "", err
	}
	commit := trimNL(out)

	w, err := CheckedOutIn(ctx, repo, base)
	if err != nil {
		return "", err
	}
	if w != "" {
		if _, err := os.Stat(w); err != nil {
			w = "" // stale worktree record: nothing on disk to update
		}
	}
	if w == "" {
		_, err := Git(ctx, repo, "update-ref", "-m", "bgagents: merge "+branch,
			"refs/heads/"+base, commit, baseSha)
		if err != nil {
			return "", err
		}
		return commit, nil
	}
	dirty, err := mergeBlockers(ctx, repo, w, baseSha, commit)
	if err != nil {
		return "", err
	}
	if len(dirty) > 0 {
		return "", &DirtyError{Path: w, Files: dirty}
	}
	if _, err := Git(ctx, w, "merge", "--ff-only", "--quiet", commit); err != nil {
		return "", err
	}
	return commit, nil
}

// resolveBranch resolves branch, preferring refs/heads/BRANCH over a tag
// or other ref of the same name.
func resolveBranch(ctx context.Context, repo, branch string) (string, error) {
	if ValidateBranchName(branch) == nil {
		if ok, err := BranchExists(ctx, repo, branch); err == nil && ok {
			return ResolveCommit(ctx, repo, "refs/heads/"+branch)
		}
	}
	return ResolveCommit(ctx, repo, branch)
}

func defaultMergeMessage(ctx context.Context, repo, base, branch, baseSha, branchSha string, squash bool) (string, error) {
	if !squash {
		return fmt.Sprintf("Merge branch '%s' into %s\n", branch, base), nil
	}
	subjects, err := Git(ctx, repo, "log", "--reverse", "--no-show-signature", "--format=* %s",
		baseSha+".."+branchSha, "--")
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Squash branch '%s' into %s\n\n%s\n", branch, base, subjects), nil
}

// mergeBlockers returns what in worktree w stops fast-forwarding it from
// oldSha to newSha: tracked changes, and untracked (or ignored) files in
// the place of paths the merge adds.
func mergeBlockers(ctx context.Context, repo, w, oldSha, newSha string) ([]string, error) {
	files, err := statusFiles(ctx, w, "--untracked-files=no")
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		return files, nil
	}
	out, _, err := run(ctx, repo, runOpts{},
		"diff", "--no-ext-diff", "--no-relative", "--no-renames", "--name-status", "-z", oldSha, newSha, "--")
	if err != nil {
		return nil, err
	}
	added, deleted := map[string]bool{}, map[string]bool{}
	fields := splitNUL(out)
	for i := 0; i+1 < len(fields); i += 2 {
		switch fields[i] {
		case "A":
			added[fields[i+1]] = true
		case "D":
			deleted[fields[i+1]] = true
		}
	}
	var blockers []string
	for p := range added {
		if _, err := os.Lstat(filepath.Join(w, filepath.FromSlash(p))); err == nil {
			blockers = append(blockers, p)
			continue
		} else if !errors.Is(err, os.ErrNotExist) && !isNotDir(err) {
			return nil, err
		}
		// A file standing where the merge needs a directory.
		for dir := parentOf(p); dir != ""; dir = parentOf(dir) {
			if deleted[dir] {
				break
			}
			if fi, err := os.Lstat(filepath.Join(w, filepath.FromSlash(dir))); err == nil && !fi.IsDir() {
				blockers = append(blockers, dir)
				break
			}
		}
	}
	return dedupSorted(blockers), nil
}

func parentOf(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ""
	}
	return p[:i]
}

// isNotDir reports an ENOTDIR failure (a path component is a file).
func isNotDir(err error) bool {
	return errors.Is(err, syscall.ENOTDIR)
}

func dedupSorted(s []string) []string {
	slices.Sort(s)
	return slices.Compact(s)
}
