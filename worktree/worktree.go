package worktree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// cleanupTimeout bounds the undo work after a failed Create; it runs even
// when the caller's context is already cancelled.
const cleanupTimeout = 30 * time.Second

// Create adds a linked worktree at path (absolute, absent or an empty
// directory) on a new branch starting at baseCommit. On failure it removes
// whatever it created: the worktree, its directory and the branch.
func Create(ctx context.Context, repo, path, branch, baseCommit string) error {
	return CreateLocking(ctx, repo, path, branch, baseCommit, nil)
}

// CreateLocking is Create for a caller that serialises the git calls which
// take the repository's locks (refs, packed-refs, the worktree list) with
// lock. It holds lock only while git registers the worktree and its branch
// (`git worktree add --no-checkout`, milliseconds even on a large
// repository), not while the files are checked out (seconds there): that
// touches only the new worktree's own index and files. lock is taken again
// to undo a failure. A nil lock locks nothing.
func CreateLocking(ctx context.Context, repo, path, branch, baseCommit string, lock sync.Locker) error {
	if lock == nil {
		lock = noLock{}
	}
	if err := ValidateBranchName(branch); err != nil {
		return fmt.Errorf("create worktree %s: %w", path, err)
	}
	if !filepath.IsAbs(path) {
		return fmt.Errorf("create worktree %s: path is not absolute", path)
	}
	path = filepath.Clean(path)
	sha, err := ResolveCommit(ctx, repo, baseCommit)
	if err != nil {
		return fmt.Errorf("create worktree %s: %w", path, err)
	}
	lock.Lock()
	existed, err := addNoCheckout(ctx, repo, path, branch, sha)
	lock.Unlock()
	if err != nil {
		return fmt.Errorf("create worktree %s: %w", path, err)
	}
	if err = checkoutFiles(ctx, path); err == nil {
		return nil
	}
	lock.Lock()
	undoCreate(ctx, repo, path, branch, existed)
	lock.Unlock()
	return fmt.Errorf("create worktree %s: %w", path, err)
}

// noLock is the sync.Locker of callers that serialise nothing.
type noLock struct{}

func (noLock) Lock()   {}
func (noLock) Unlock() {}

// addNoCheckout registers the worktree and creates its branch without
// checking out any file; on failure it removes what it made.
func addNoCheckout(ctx context.Context, repo, path, branch, sha string) (existed bool, err error) {
	exists, err := BranchExists(ctx, repo, branch)
	if err != nil {
		return false, err
	}
	if exists {
		return false, fmt.Errorf("branch %s already exists", branch)
	}
	existed, err = emptyOrAbsent(path)
	if err != nil {
		return existed, err
	}
	// No hooks here: a post-checkout hook would run on an empty
	// directory, under the caller's lock. It runs once the files are
	// there (checkoutFiles).
	_, _, err = run(ctx, repo, runOpts{},
		"-c", "core.hooksPath="+os.DevNull, "worktree", "add", "--no-checkout", "-b", branch, "--", path, sha)
	if err != nil {
		undoCreate(ctx, repo, path, branch, existed)
		return existed, err
	}
	return existed, nil
}

// checkoutFiles fills the index and the files of a worktree made with
// --no-checkout from its HEAD (and runs the post-checkout hook, as
// `git worktree add` does). checkout.workers=0 (one per CPU) made a
// 10,000-file checkout 2-4x faster; git only parallelises above 100
// files, so small repositories are unaffected.
func checkoutFiles(ctx context.Context, path string) error {
	_, _, err := run(ctx, path, runOpts{}, "-c", "checkout.workers=0", "checkout", "--force", "--quiet")
	return err
}

// Move moves the linked worktree at from to to (`git worktree move`: a
// rename of the directory on one filesystem).
func Move(ctx context.Context, repo, from, to string) error {
	if _, err := Git(ctx, repo, "worktree", "move", "--", from, to); err != nil {
		return fmt.Errorf("move worktree %s: %w", from, err)
	}
	return nil
}

// RenameBranch renames the local branch from to to, also where a worktree
// has it checked out. to must not exist.
func RenameBranch(ctx context.Context, repo, from, to string) error {
	for _, b := range []string{from, to} {
		if err := ValidateBranchName(b); err != nil {
			return fmt.Errorf("rename branch: %w", err)
		}
	}
	if _, err := Git(ctx, repo, "branch", "--move", "--", from, to); err != nil {
		return fmt.Errorf("rename branch %s: %w", from, err)
	}
	return nil
}

// ResetTo points the branch checked out at path to commit and brings the
// files there, rewriting only the files that differ between the two
// commits; local changes to other tracked files and untracked files stay
// (`git reset --keep`). When a changed file is in the way, it falls back
// to `git reset --hard`. Ignored files are never touched unless a tracked
// file of commit takes their place.
func ResetTo(ctx context.Context, path, commit string) error {
	if err := checkRev(commit); err != nil {
		return fmt.Errorf("reset %s: %w", path, err)
	}
	if _, _, err := run(ctx, path, runOpts{}, "-c", "checkout.workers=0", "reset", "--keep", "--quiet", commit, "--"); err == nil {
		return nil
	} else if ctx.Err() != nil {
		return fmt.Errorf("reset %s: %w", path, err)
	}
	if _, _, err := run(ctx, path, runOpts{}, "-c", "checkout.workers=0", "reset", "--hard", "--quiet", commit, "--"); err != nil {
		return fmt.Errorf("reset %s: %w", path, err)
	}
	return nil
}

// emptyOrAbsent reports whether path exists; it fails if path exists and
// is not an empty directory.
func emptyOrAbsent(path string) (existed bool, err error) {
	entries, err := os.ReadDir(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false, nil
	case err != nil:
		return false, err
	case len(entries) > 0:
		return true, errors.New("path exists and is not empty")
	}
	return true, nil
}

// undoCreate removes what a failed `git worktree add` may have left.
func undoCreate(ctx context.Context, repo, path, branch string, existed bool) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	_, _, _ = run(cctx, repo, runOpts{}, "worktree", "remove", "--force", "--", path)
	if existed {
		// It was an empty directory before: empty it again.
		entries, _ := os.ReadDir(path)
		for _, e := range entries {
			_ = os.RemoveAll(filepath.Join(path, e.Name()))
		}
	} else {
		_ = os.RemoveAll(path)
	}
	_, _, _ = run(cctx, repo, runOpts{}, "worktree", "prune")
	// The branch did not exist before Create (checked), so any branch of
	// that name now is ours.
	_, _, _ = run(cctx, repo, runOpts{}, "branch", "-D", "--", branch)
}

// Remove removes the linked worktree at path (with force, even when it has
// changes; without, also when its only changes are files setup commands
// left as they left them, see RecordSetupFiles). If the directory is
// already gone it prunes stale worktree records instead; removing twice is
// not an error.
func Remove(ctx context.Context, repo, path string, force bool) error {
	if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
		if _, err := Git(ctx, repo, "worktree", "prune"); err != nil {
			return fmt.Errorf("remove worktree %s: %w", path, err)
		}
		return nil
	}
	if !force {
		if rec, err := readSetupFiles(path); err == nil && len(rec) > 0 {
			if dirty, err := Dirty(ctx, path); err == nil && !dirty {
				force = true // what git would refuse for is setup's
			}
		}
	}
	args := []string{"worktree", "remove"}
	if force {
		args = append(args, "--force")
	}
	args = append(args, "--", path)
	if _, err := Git(ctx, repo, args...); err != nil {
		return fmt.Errorf("remove worktree %s: %w", path, err)
	}
	return nil
}

// DeleteBranch deletes a local branch (-d, or -D with force). A branch
// that does not exist is not an error.
func DeleteBranch(ctx context.Context, repo, branch string, force bool) error {
	if err := ValidateBranchName(branch); err != nil {
		return fmt.Errorf("delete branch: %w", err)
	}
	flag := "-d"
	if force {
		flag = "-D"
	}
	_, err := Git(ctx, repo, "branch", flag, "--", branch)
	if err == nil {
		return nil
	}
	if exists, xerr := BranchExists(ctx, repo, branch); xerr == nil && !exists {
		return nil
	}
	return fmt.Errorf("delete branch %s: %w", branch, err)
}

// WorktreeInfo describes one entry of `git worktree list`. Branch is the
// short branch name, "" when detached or bare.
type WorktreeInfo struct {
	Path     string
	Head     string
	Branch   string
	Bare     bool
	Detached bool
	Locked   bool
	Prunable bool
}

// ListWorktrees lists the main worktree (first) and all linked worktrees.
func ListWorktrees(ctx context.Context, repo string) ([]WorktreeInfo, error) {
	out, _, err := run(ctx, repo, runOpts{}, "worktree", "list", "--porcelain", "-z")
	if err != nil {
		return nil, fmt.Errorf("list worktrees of %s: %w", repo, err)
	}
	return parseWorktreeList(out), nil
}

func parseWorktreeList(out []byte) []WorktreeInfo {
	var list []WorktreeInfo
	var cur *WorktreeInfo
	for _, field := range strings.Split(string(out), "\x00") {
		if field == "" {
			cur = nil // blank field ends a record
			continue
		}
		key, val, _ := strings.Cut(field, " ")
		if key == "worktree" {
			list = append(list, WorktreeInfo{Path: val})
			cur = &list[len(list)-1]
			continue
		}
		if cur == nil {
			continue
		}
		switch key {
		case "HEAD":
			cur.Head = val
		case "branch":
			cur.Branch = strings.TrimPrefix(val, "refs/heads/")
		case "bare":
			cur.Bare = true
		case "detached":
			cur.Detached = true
		case "locked":
			cur.Locked = true
		case "prunable":
			cur.Prunable = true
		}
	}
	return list
}

// CheckedOutIn returns the path of the worktree (main or linked) that has
// refs/heads/BRANCH checked out, or "" if none has.
func CheckedOutIn(ctx context.Context, repo, branch string) (string, error) {
	wts, err := ListWorktrees(ctx, repo)
	if err != nil {
		return "", fmt.Errorf("find checkout of %s: %w", branch, err)
	}
	for _, w := range wts {
		if !w.Bare && w.Branch == branch {
			return w.Path, nil
		}
	}
	return "", nil
}
