package worktree

import (
	"context"
	"fmt"
	"strings"
)

// CommitMessages returns the full messages of the commits in base..ref,
// oldest first, separated by blank lines.
func CommitMessages(ctx context.Context, repo, base, ref string) (string, error) {
	if err := checkRev(base); err != nil {
		return "", err
	}
	if err := checkRev(ref); err != nil {
		return "", err
	}
	out, err := Git(ctx, repo, "log", "--reverse", "--format=%B%x00", base+".."+ref, "--")
	if err != nil {
		return "", fmt.Errorf("commit messages %s..%s: %w", base, ref, err)
	}
	var msgs []string
	for _, m := range strings.Split(out, "\x00") {
		if m = strings.TrimSpace(m); m != "" {
			msgs = append(msgs, m)
		}
	}
	return strings.Join(msgs, "\n\n"), nil
}

// ValidateRemoteName rejects names git could take for an option or that
// are not a single word.
func ValidateRemoteName(remote string) error {
	if remote == "" || strings.HasPrefix(remote, "-") || strings.ContainsAny(remote, " \t\n\x00:") {
		return fmt.Errorf("remote %q is not a remote name (e.g. \"origin\")", remote)
	}
	return nil
}

// RemoteURL returns the URL of remote, or an error naming the remotes the
// repository has when it has no such remote.
func RemoteURL(ctx context.Context, repo, remote string) (string, error) {
	if err := ValidateRemoteName(remote); err != nil {
		return "", err
	}
	url, _, err := run(ctx, repo, runOpts{ok: []int{1}}, "config", "--get", "remote."+remote+".url")
	if err != nil {
		return "", fmt.Errorf("remote %s: %w", remote, err)
	}
	if u := trimNL(url); u != "" {
		return u, nil
	}
	names, _ := Git(ctx, repo, "remote")
	if names == "" {
		return "", fmt.Errorf("the repository has no remote %q (it has none; add one with `git remote add %s URL`)", remote, remote)
	}
	return "", fmt.Errorf("the repository has no remote %q (it has: %s)", remote, strings.Join(strings.Fields(names), ", "))
}

// Push pushes the local branch to the same name on remote and returns the
// commit pushed. It never forces: a rejected push (the remote branch has
// commits the local one lacks) is an error.
func Push(ctx context.Context, repo, remote, branch string) (string, error) {
	if err := ValidateRemoteName(remote); err != nil {
		return "", err
	}
	if err := ValidateBranchName(branch); err != nil {
		return "", err
	}
	sha, err := ResolveCommit(ctx, repo, "refs/heads/"+branch)
	if err != nil {
		return "", fmt.Errorf("push %s: %w", branch, err)
	}
	ref := "refs/heads/" + branch
	if _, err := Git(ctx, repo, "push", "--", remote, ref+":"+ref); err != nil {
		if strings.Contains(err.Error(), "[rejected]") || strings.Contains(err.Error(), "non-fast-forward") {
			return "", fmt.Errorf("push %s to %s was rejected: the remote branch has commits this branch lacks; fetch and merge them in the agent's worktree, or push with --force-with-lease yourself: %w", branch, remote, err)
		}
		return "", fmt.Errorf("push %s to %s: %w", branch, remote, err)
	}
	return sha, nil
}

// MergeInto merges branch into the branch checked out in the worktree at
// wt with a merge commit. When it conflicts, the conflicted files are
// committed with their conflict markers (so the next merge can proceed)
// and named in the result: whoever works in wt resolves them.
func MergeInto(ctx context.Context, wt, branch, message string) ([]string, error) {
	if err := ValidateBranchName(branch); err != nil {
		return nil, err
	}
	env, err := identityEnv(ctx, wt)
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", branch, err)
	}
	_, code, err := run(ctx, wt, runOpts{env: env, ok: []int{1}},
		"merge", "--no-ff", "--no-edit", "--no-verify", "-m", message, "refs/heads/"+branch)
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", branch, err)
	}
	if code == 0 {
		return nil, nil
	}
	out, _, err := run(ctx, wt, runOpts{}, "diff", "--name-only", "-z", "--diff-filter=U")
	if err != nil {
		return nil, fmt.Errorf("merge %s: %w", branch, err)
	}
	files := splitNUL(out)
	if len(files) == 0 {
		_, _ = Git(ctx, wt, "merge", "--abort")
		return nil, fmt.Errorf("merge %s failed without conflicts", branch)
	}
	if _, err := Git(ctx, wt, "add", "-A"); err != nil {
		return nil, fmt.Errorf("merge %s: %w", branch, err)
	}
	msg := message + "\n\nConflicts left to resolve (conflict markers committed):\n\t" + strings.Join(files, "\n\t") + "\n"
	if _, _, err := run(ctx, wt, runOpts{env: env, stdin: strings.NewReader(msg)}, "commit", "--no-verify", "--quiet", "-F", "-"); err != nil {
		return nil, fmt.Errorf("merge %s: commit conflicts: %w", branch, err)
	}
	return files, nil
}

// BranchTips maps every local branch to its commit.
func BranchTips(ctx context.Context, repo string) (map[string]string, error) {
	out, err := Git(ctx, repo, "for-each-ref", "--format=%(objectname) %(refname:strip=2)", "refs/heads/")
	if err != nil {
		return nil, fmt.Errorf("branch tips: %w", err)
	}
	tips := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if sha, name, ok := strings.Cut(line, " "); ok {
			tips[name] = sha
		}
	}
	return tips, nil
}

// ConflictMarkers lists the tracked files in the worktree at wt that still
// hold a conflict marker line ("<<<<<<< ").
func ConflictMarkers(ctx context.Context, wt string) ([]string, error) {
	out, _, err := run(ctx, wt, runOpts{ok: []int{1}}, "grep", "-l", "-I", "-z", "-e", "^<<<<<<< ", "--")
	if err != nil {
		return nil, fmt.Errorf("conflict markers in %s: %w", wt, err)
	}
	return splitNUL(out), nil
}
