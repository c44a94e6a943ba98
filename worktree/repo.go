package worktree

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrNotRepository is wrapped by RepoRoot when dir is not inside a git
// repository.
var ErrNotRepository = errors.New("not a git repository")

// ErrUnknownRevision is wrapped by ResolveCommit when ref names no commit.
var ErrUnknownRevision = errors.New("unknown revision")

// RepoRoot returns the top level of the main checkout of the repository
// containing dir; from a linked worktree it is the main worktree's path.
// Bare repositories have no main checkout and yield an error.
func RepoRoot(ctx context.Context, dir string) (string, error) {
	if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%w: %s", ErrNotRepository, dir)
	}
	out, err := Git(ctx, dir, "rev-parse", "--path-format=absolute", "--git-common-dir", "--is-bare-repository")
	if err != nil {
		var ge *GitError
		if errors.As(err, &ge) && strings.Contains(ge.Stderr, "not a git repository") {
			return "", fmt.Errorf("%w: %s", ErrNotRepository, dir)
		}
		return "", fmt.Errorf("find repository root of %s: %w", dir, err)
	}
	lines := strings.Split(out, "\n")
	if len(lines) != 2 {
		return "", fmt.Errorf("find repository root of %s: unexpected rev-parse output %q", dir, out)
	}
	common, bare := filepath.Clean(lines[0]), lines[1] == "true"
	if bare {
		return "", fmt.Errorf("find repository root of %s: %s is a bare repository with no main checkout", dir, common)
	}
	if filepath.Base(common) == ".git" {
		return filepath.Dir(common), nil
	}
	// The git dir lives outside the checkout (--separate-git-dir). From the
	// main worktree, its top level is the answer; from a linked one git
	// itself cannot tell where the main checkout is.
	out, err = Git(ctx, dir, "rev-parse", "--path-format=absolute", "--git-dir", "--show-toplevel")
	if err != nil {
		return "", fmt.Errorf("find repository root of %s: %w", dir, err)
	}
	gitDir, top, _ := strings.Cut(out, "\n")
	if filepath.Clean(gitDir) != common || top == "" {
		return "", fmt.Errorf("find repository root of %s: the repository's git dir %s is outside its main checkout, which cannot be located from here", dir, common)
	}
	return top, nil
}

// CurrentBranch returns the short name of the branch checked out in repo
// (which may be any worktree).
func CurrentBranch(ctx context.Context, repo string) (string, error) {
	out, code, err := run(ctx, repo, runOpts{ok: []int{1}}, "symbolic-ref", "--quiet", "HEAD")
	if err != nil {
		return "", fmt.Errorf("current branch in %s: %w", repo, err)
	}
	ref := trimNL(out)
	if code == 1 || !strings.HasPrefix(ref, "refs/heads/") {
		return "", fmt.Errorf("HEAD is detached in %s; pass --base", repo)
	}
	return strings.TrimPrefix(ref, "refs/heads/"), nil
}

// ResolveCommit returns the full object name of ref^{commit}. Unknown
// revisions and revisions that are not commits wrap ErrUnknownRevision.
//
// "HEAD", full ref names ("refs/...") and full object names are read
// in-process with go-git (0.2-0.4 ms against 2 ms for a git process
// here); everything else, and anything go-git cannot answer, goes to
// `git rev-parse`, so the full revision syntax keeps working.
func ResolveCommit(ctx context.Context, repo, ref string) (string, error) {
	if err := checkRev(ref); err != nil {
		return "", fmt.Errorf("resolve %q: %w", ref, err)
	}
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("resolve %q: %w", ref, err)
	}
	if sha, ok := resolveFast(repo, ref); ok {
		return sha, nil
	}
	out, code, err := run(ctx, repo, runOpts{ok: []int{1}},
		"rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("resolve %q: %w", ref, err)
	}
	sha := trimNL(out)
	if code == 1 || sha == "" {
		return "", fmt.Errorf("resolve %q in %s: %w (no such commit)", ref, repo, ErrUnknownRevision)
	}
	return sha, nil
}

// resolveFast resolves the simple revisions whose meaning needs no
// revision parser. ok is false when the CLI should answer instead.
func resolveFast(repo, ref string) (sha string, ok bool) {
	isHex := len(ref) == 40 && plumbing.IsHash(ref)
	if ref != "HEAD" && !strings.HasPrefix(ref, "refs/") && !isHex {
		return "", false
	}
	r, err := openRepo(repo)
	if err != nil {
		return "", false
	}
	var h plumbing.Hash
	if isHex {
		h = plumbing.NewHash(ref)
	} else {
		rf, err := r.Reference(plumbing.ReferenceName(ref), true)
		if err != nil {
			return "", false
		}
		h = rf.Hash()
	}
	for range 8 { // peel annotated tags, tags of tags, ...
		obj, err := r.Storer.EncodedObject(plumbing.AnyObject, h)
		if err != nil {
			return "", false
		}
		switch obj.Type() {
		case plumbing.CommitObject:
			return h.String(), true
		case plumbing.TagObject:
			tag, err := object.DecodeTag(r.Storer, obj)
			if err != nil {
				return "", false
			}
			h = tag.Target
		default:
			return "", false
		}
	}
	return "", false
}

// Head returns the commit HEAD points at in dir.
func Head(ctx context.Context, dir string) (string, error) {
	sha, err := ResolveCommit(ctx, dir, "HEAD")
	if err != nil {
		return "", fmt.Errorf("head of %s: %w", dir, err)
	}
	return sha, nil
}

// BranchExists reports whether refs/heads/BRANCH exists. It reads the ref
// in-process with go-git and falls back to the git CLI when go-git cannot
// open the repository (e.g. repository extensions it does not know).
func BranchExists(ctx context.Context, repo, branch string) (bool, error) {
	if err := ValidateBranchName(branch); err != nil {
		return false, fmt.Errorf("branch exists: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("branch exists %s: %w", branch, err)
	}
	if r, err := openRepo(repo); err == nil {
		_, err := r.Reference(plumbing.NewBranchReferenceName(branch), false)
		switch {
		case err == nil:
			return true, nil
		case errors.Is(err, plumbing.ErrReferenceNotFound):
			return false, nil
		}
		// Any other read error: ask the CLI.
	}
	return branchExistsCLI(ctx, repo, branch)
}

func branchExistsCLI(ctx context.Context, repo, branch string) (bool, error) {
	_, code, err := run(ctx, repo, runOpts{ok: []int{1, 2}},
		"show-ref", "--verify", "--quiet", "refs/heads/"+branch)
	if err != nil {
		return false, fmt.Errorf("branch exists %s: %w", branch, err)
	}
	return code == 0, nil
}

// openRepo opens the repository containing dir with go-git, linked
// worktrees included.
func openRepo(dir string) (*gogit.Repository, error) {
	return gogit.PlainOpenWithOptions(dir, &gogit.PlainOpenOptions{
		DetectDotGit:          true,
		EnableDotGitCommonDir: true,
	})
}

// IsAncestor reports whether commit a is an ancestor of (or equal to) b.
func IsAncestor(ctx context.Context, repo, a, b string) (bool, error) {
	if err := checkRev(a); err != nil {
		return false, fmt.Errorf("is-ancestor: %w", err)
	}
	if err := checkRev(b); err != nil {
		return false, fmt.Errorf("is-ancestor: %w", err)
	}
	_, code, err := run(ctx, repo, runOpts{ok: []int{1}}, "merge-base", "--is-ancestor", a, b)
	if err != nil {
		return false, fmt.Errorf("is %s an ancestor of %s: %w", a, b, err)
	}
	return code == 0, nil
}

// Ahead returns the number of commits reachable from ref but not from base.
func Ahead(ctx context.Context, repo, base, ref string) (int, error) {
	n, err := countCommits(ctx, repo, base, ref)
	if err != nil {
		return 0, fmt.Errorf("commits of %s ahead of %s: %w", ref, base, err)
	}
	return n, nil
}

func countCommits(ctx context.Context, repo, base, ref string) (int, error) {
	if err := checkRev(base); err != nil {
		return 0, err
	}
	if err := checkRev(ref); err != nil {
		return 0, err
	}
	out, err := Git(ctx, repo, "rev-list", "--count", base+".."+ref, "--")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(out)
	if err != nil {
		return 0, fmt.Errorf("parse rev-list count %q: %w", out, err)
	}
	return n, nil
}
