package worktree

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// diffFlags pin diff output against user configuration: no colour, no external diff
// drivers, paths relative to the top level, rename detection on.
var diffFlags = []string{"--no-color", "--no-ext-diff", "--no-relative", "-M"}

// DiffStat summarises base..ref.
type DiffStat struct {
	Commits   int // commits in ref not in base
	Files     int // changed files; binary files count with 0/0 lines
	Additions int
	Deletions int
}

// Stat counts the commits of base..ref and the files and lines changed
// between the two trees (`git diff --numstat base ref`).
func Stat(ctx context.Context, repo, base, ref string) (DiffStat, error) {
	commits, err := countCommits(ctx, repo, base, ref)
	if err != nil {
		return DiffStat{}, fmt.Errorf("stat %s..%s: %w", base, ref, err)
	}
	st, err := TreeStat(ctx, repo, base, ref)
	st.Commits = commits
	return st, err
}

// TreeStat counts the files and lines changed between two trees (commits
// or tree ids); Commits is left zero.
func TreeStat(ctx context.Context, repo, base, ref string) (DiffStat, error) {
	out, err := diffOutput(ctx, repo, base, ref, "--numstat", "-z")
	if err != nil {
		return DiffStat{}, fmt.Errorf("stat %s %s: %w", base, ref, err)
	}
	nums, err := parseNumstatZ(splitNUL(out))
	if err != nil {
		return DiffStat{}, fmt.Errorf("stat %s %s: %w", base, ref, err)
	}
	st := DiffStat{Files: len(nums)}
	for _, n := range nums {
		st.Additions += n.add
		st.Deletions += n.del
	}
	return st, nil
}

// Diff returns `git diff base ref` (or its --stat summary), uncoloured.
func Diff(ctx context.Context, repo, base, ref string, stat bool) (string, error) {
	var extra []string
	if stat {
		extra = append(extra, "--stat")
	}
	out, err := diffOutput(ctx, repo, base, ref, extra...)
	if err != nil {
		return "", fmt.Errorf("diff %s %s: %w", base, ref, err)
	}
	return string(out), nil
}

func diffOutput(ctx context.Context, repo, base, ref string, extra ...string) ([]byte, error) {
	if err := checkRev(base); err != nil {
		return nil, err
	}
	if err := checkRev(ref); err != nil {
		return nil, err
	}
	args := append([]string{"diff"}, diffFlags...)
	args = append(args, extra...)
	args = append(args, base, ref, "--")
	out, _, err := run(ctx, repo, runOpts{}, args...)
	return out, err
}

// FileChange is one file changed between two commits. Status is "A", "M",
// "D" or "R" (type changes count as "M", copies as "A"); OldPath is set
// for renames and copies. Binary files have 0 additions and deletions.
type FileChange struct {
	Path      string
	OldPath   string
	Status    string
	Additions int
	Deletions int
}

// ChangedFiles lists the files changed between base and ref.
func ChangedFiles(ctx context.Context, repo, base, ref string) ([]FileChange, error) {
	out, err := diffOutput(ctx, repo, base, ref, "--raw", "--numstat", "-z")
	if err != nil {
		return nil, fmt.Errorf("changed files %s %s: %w", base, ref, err)
	}
	changes, err := parseRawNumstatZ(splitNUL(out))
	if err != nil {
		return nil, fmt.Errorf("changed files %s %s: %w", base, ref, err)
	}
	return changes, nil
}

type numstat struct {
	add, del      int
	path, oldPath string
}

// parseNumstatZ parses `--numstat -z` fields: "A\tD\tpath" or, for a
// rename, "A\tD\t" followed by the old and new paths as separate fields.
func parseNumstatZ(fields []string) ([]numstat, error) {
	var out []numstat
	for i := 0; i < len(fields); i++ {
		parts := strings.SplitN(fields[i], "\t", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("parse numstat %q", fields[i])
		}
		n := numstat{add: atoiDash(parts[0]), del: atoiDash(parts[1]), path: parts[2]}
		if n.path == "" {
			if i+2 >= len(fields) {
				return nil, errors.New("parse numstat: truncated rename")
			}
			n.oldPath, n.path = fields[i+1], fields[i+2]
			i += 2
		}
		out = append(out, n)
	}
	return out, nil
}

// atoiDash parses a numstat count; "-" (binary) is 0.
func atoiDash(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0
	}
	return n
}

// parseRawNumstatZ parses `--raw --numstat -z`: raw entries
// (":modes oids STATUS", path, [new path]) followed by numstat entries in
// the same order.
func parseRawNumstatZ(fields []string) ([]FileChange, error) {
	var changes []FileChange
	i := 0
	for i < len(fields) && strings.HasPrefix(fields[i], ":") {
		header := strings.Fields(fields[i])
		if len(header) < 5 || i+1 >= len(fields) {
			return nil, fmt.Errorf("parse raw diff %q", fields[i])
		}
		status := header[4][:1]
		c := FileChange{Path: fields[i+1]}
		i += 2
		if status == "R" || status == "C" {
			if i >= len(fields) {
				return nil, errors.New("parse raw diff: truncated rename")
			}
			c.OldPath, c.Path = c.Path, fields[i]
			i++
		}
		switch status {
		case "T":
			status = "M"
		case "C":
			status = "A"
		}
		c.Status = status
		changes = append(changes, c)
	}
	nums, err := parseNumstatZ(fields[i:])
	if err != nil {
		return nil, err
	}
	byPath := make(map[string]numstat, len(nums))
	for _, n := range nums {
		byPath[n.path] = n
	}
	for k := range changes {
		if n, ok := byPath[changes[k].Path]; ok {
			changes[k].Additions, changes[k].Deletions = n.add, n.del
		}
	}
	return changes, nil
}

// Conflicts reports the files that merging b into a would leave
// conflicted (`git merge-tree --write-tree`); nil means a clean merge.
// Nothing in any index or working tree is touched.
func Conflicts(ctx context.Context, repo, a, b string) ([]string, error) {
	_, files, err := mergeTree(ctx, repo, a, b)
	if err != nil {
		return nil, fmt.Errorf("check conflicts of %s and %s: %w", a, b, err)
	}
	return files, nil
}

// mergeTree merges a and b in memory. It returns the merged tree, or the
// conflicting file names when the merge does not apply cleanly.
func mergeTree(ctx context.Context, repo, a, b string) (string, []string, error) {
	if err := checkRev(a); err != nil {
		return "", nil, err
	}
	if err := checkRev(b); err != nil {
		return "", nil, err
	}
	out, code, err := run(ctx, repo, runOpts{ok: []int{1}},
		"merge-tree", "--write-tree", "--name-only", "--no-messages", "-z", a, b)
	if err != nil {
		return "", nil, err
	}
	tree, files := parseMergeTreeZ(out)
	if tree == "" {
		return "", nil, fmt.Errorf("merge-tree: unexpected output %q", out)
	}
	if code == 0 {
		return tree, nil, nil
	}
	if len(files) == 0 {
		// Exit 1 with no file named should not happen; do not report a
		// conflict-free merge.
		return "", nil, errors.New("merge-tree reported conflicts without naming files")
	}
	return tree, files, nil
}

// parseMergeTreeZ parses `merge-tree --write-tree --name-only -z`: the
// tree oid, then conflicted file names, ended by an empty field (before
// informational messages) or by the end of output.
func parseMergeTreeZ(out []byte) (string, []string) {
	s := strings.TrimRight(string(out), "\n")
	fields := strings.Split(s, "\x00")
	tree := strings.TrimSpace(fields[0])
	var files []string
	for _, f := range fields[1:] {
		if f == "" {
			break
		}
		files = append(files, f)
	}
	return tree, files
}
