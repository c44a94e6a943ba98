package provision

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/bgagents/bgagents/worktree"
)

// copyWorkers is the number of files copied at once. Copying many small
// files is bound by system calls more than by bandwidth: a few workers
// overlap them without crowding a 2-core machine.
const copyWorkers = 4

// WorktreeIncludeFile is the name of the file, at the top of the checkout,
// that lists gitignored files to copy into every worktree (Claude Code's
// convention).
const WorktreeIncludeFile = ".worktreeinclude"

// CopyIgnored copies gitignored paths from the main checkout into the same
// relative place in the worktree at worktreeDir and returns the paths it did not copy because
// git does not ignore them: tracked paths (or directories holding tracked
// files) come with the checkout, and untracked paths that are not ignored
// would show up as new files in the agent's branch.
//
// Each path is relative to mainCheckout; absolute paths, paths with a ".."
// element, paths inside .git and paths whose symlinks resolve outside the
// checkout are refused, and so is a destination that already exists or
// whose parent resolves outside the worktree. A path that does not exist in
// the main checkout is an error naming it.
//
// Directories are copied recursively with a small pool of workers. Regular
// files are cloned (reflink, FICLONE) where the filesystem supports it and
// copied otherwise; never hardlinked, so writing to a copy never changes
// the original. Permission bits and modification times are kept. Symlinks
// are recreated as symlinks and never followed; an absolute target inside
// the main checkout is rewritten to a relative link to the same place in
// the worktree (so it survives the worktree being moved), any other
// target is kept as it is. Sockets, FIFOs and devices are skipped.
//
// On failure (or when ctx ends) what was copied is removed again.
func CopyIgnored(ctx context.Context, mainCheckout, worktreeDir string, paths []string) (skipped []string, err error) {
	rels, err := cleanPaths(paths)
	if err != nil || len(rels) == 0 {
		return nil, err
	}
	if mainCheckout, err = filepath.Abs(mainCheckout); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	if worktreeDir, err = filepath.Abs(worktreeDir); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	realMain, err := filepath.EvalSymlinks(mainCheckout)
	if err != nil {
		return nil, fmt.Errorf("copy: main checkout: %w", err)
	}
	realWT, err := filepath.EvalSymlinks(worktreeDir)
	if err != nil {
		return nil, fmt.Errorf("copy: worktree: %w", err)
	}
	for _, rel := range rels {
		if err := checkSource(mainCheckout, realMain, rel); err != nil {
			return nil, err
		}
	}
	tracked, ignored, err := classify(ctx, mainCheckout, rels)
	if err != nil {
		return nil, err
	}
	var todo []string
	for _, rel := range rels {
		if tracked[rel] || !ignored[rel] {
			skipped = append(skipped, rel)
			continue
		}
		if err := checkDestination(worktreeDir, realWT, rel); err != nil {
			return nil, err
		}
		todo = append(todo, rel)
	}
	if len(todo) == 0 {
		return skipped, nil
	}

	tc := newTreeCopy(ctx, mainCheckout, realMain, worktreeDir)
	var created []string // what to remove on failure, in creation order
	for _, rel := range todo {
		dst := filepath.Join(worktreeDir, rel)
		top, err := mkdirParents(filepath.Dir(dst))
		if top != "" {
			created = append(created, top)
		}
		if err != nil {
			tc.fail(fmt.Errorf("copy %s: %w", rel, err))
			break
		}
		created = append(created, dst)
		if err := tc.walk(rel); err != nil {
			tc.fail(err)
			break
		}
	}
	if err := tc.finish(); err != nil {
		for _, p := range slices.Backward(created) {
			removeAll(p)
		}
		return nil, err
	}
	return skipped, nil
}

// cleanPaths validates and cleans the paths given to CopyIgnored, drops
// duplicates and paths inside another listed path.
func cleanPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if p == "" {
			return nil, errors.New("copy: empty path")
		}
		if filepath.IsAbs(p) {
			return nil, fmt.Errorf("copy %s: absolute paths are not allowed; give a path relative to the repository", p)
		}
		if slices.Contains(strings.Split(filepath.ToSlash(p), "/"), "..") {
			return nil, fmt.Errorf("copy %s: paths may not contain \"..\"", p)
		}
		c := filepath.Clean(p)
		if c == "." {
			return nil, fmt.Errorf("copy %s: the whole checkout cannot be copied", p)
		}
		if first, _, _ := strings.Cut(c, string(filepath.Separator)); first == ".git" {
			return nil, fmt.Errorf("copy %s: paths inside .git are not copied", p)
		}
		out = append(out, c)
	}
	var kept []string
	for _, p := range out {
		covered := slices.Contains(kept, p)
		for _, q := range out {
			covered = covered || q != p && isWithin(q, p)
		}
		if !covered {
			kept = append(kept, p)
		}
	}
	return kept, nil
}

// isWithin reports whether path p is root or inside it (lexically; both
// clean).
func isWithin(root, p string) bool {
	if p == root {
		return true
	}
	if root == string(filepath.Separator) {
		return strings.HasPrefix(p, root)
	}
	return strings.HasPrefix(p, root+string(filepath.Separator))
}

// checkSource checks that rel exists in the main checkout and that it does
// not resolve outside it.
func checkSource(mainCheckout, realMain, rel string) error {
	src := filepath.Join(mainCheckout, rel)
	if _, err := os.Lstat(src); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy %s: %s does not exist; remove it from [worktree] copy or create it", rel, src)
		}
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("copy %s: %s is a symlink to something that does not exist", rel, src)
		}
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	if !isWithin(realMain, real) {
		return fmt.Errorf("copy %s: %s resolves to %s, outside the checkout; only files inside the repository are copied", rel, src, real)
	}
	return nil
}

// checkDestination checks that rel does not exist in the worktree and that
// its nearest existing parent resolves inside the worktree (a tracked
// symlink must not lead the copy elsewhere).
func checkDestination(wtDir, realWT, rel string) error {
	dst := filepath.Join(wtDir, rel)
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("copy %s: %s already exists in the worktree", rel, dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	parent := filepath.Dir(dst)
	for {
		if _, err := os.Lstat(parent); err == nil {
			break
		}
		parent = filepath.Dir(parent)
	}
	real, err := filepath.EvalSymlinks(parent)
	if err != nil {
		return fmt.Errorf("copy %s: %w", rel, err)
	}
	if !isWithin(realWT, real) {
		return fmt.Errorf("copy %s: %s resolves to %s, outside the worktree", rel, parent, real)
	}
	return nil
}

// classify asks git which of rels are tracked (or hold tracked files) and
// which are ignored. Pathspecs are literal: a '*' in a name is a '*'.
func classify(ctx context.Context, dir string, rels []string) (tracked, ignored map[string]bool, err error) {
	tracked = map[string]bool{}
	ignored = map[string]bool{}
	args := append([]string{"--literal-pathspecs", "ls-files", "-z", "--cached", "--"}, rels...)
	out, err := worktree.Git(ctx, dir, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("copy: list tracked files: %w", err)
	}
	for _, f := range strings.Split(out, "\x00") {
		if f == "" {
			continue
		}
		f = filepath.FromSlash(f)
		for _, rel := range rels {
			if isWithin(rel, f) {
				tracked[rel] = true
			}
		}
	}
	// One check-ignore -q per path (it reads paths literally): there are a
	// handful, and the exit code is the whole answer (0 ignored, 1 not).
	for _, rel := range rels {
		if tracked[rel] {
			continue
		}
		_, err := worktree.Git(ctx, dir, "check-ignore", "-q", "--", rel)
		var gerr *worktree.GitError
		switch {
		case err == nil:
			ignored[rel] = true
		case errors.As(err, &gerr) && gerr.ExitCode == 1:
		default:
			return nil, nil, fmt.Errorf("copy %s: check whether git ignores it: %w", rel, err)
		}
	}
	return tracked, ignored, nil
}

// GitStatus reports whether git tracks rel (relative to the checkout or
// worktree dir; for a directory: whether it holds tracked files) and
// whether git ignores it. rel need not exist.
func GitStatus(ctx context.Context, dir, rel string) (tracked, ignored bool, err error) {
	rels, err := cleanPaths([]string{rel})
	if err != nil {
		return false, false, err
	}
	if len(rels) == 0 {
		return false, false, fmt.Errorf("%q is not a path inside the repository", rel)
	}
	t, i, err := classify(ctx, dir, rels)
	if err != nil {
		return false, false, err
	}
	return t[rels[0]], i[rels[0]], nil
}

// mkdirParents creates dir and its missing parents and returns the
// topmost directory it created ("" when dir existed).
func mkdirParents(dir string) (top string, err error) {
	p := dir
	for {
		if _, err := os.Lstat(p); err == nil {
			break
		}
		top = p
		next := filepath.Dir(p)
		if next == p {
			break
		}
		p = next
	}
	if top == "" {
		return "", nil
	}
	return top, os.MkdirAll(dir, 0o755)
}

// removeAll removes p like os.RemoveAll, first making directories that
// were copied read-only writable again.
func removeAll(p string) {
	if os.RemoveAll(p) == nil {
		return
	}
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			os.Chmod(q, 0o700)
		}
		return nil
	})
	os.RemoveAll(p)
}

// copyJob is one file or symlink for the workers.
type copyJob struct {
	rel      string // the CopyIgnored path it belongs to, for errors
	src, dst string
	symlink  bool
}

// dirMeta is a copied directory whose mode and times are set once
// everything inside it is copied.
type dirMeta struct {
	path string
	info fs.FileInfo
}

// treeCopy copies trees with a pool of workers.
type treeCopy struct {
	ctx      context.Context
	cancel   context.CancelFunc
	parent   context.Context
	c        copier
	srcRoots []string // the main checkout as given and resolved
	srcRoot  string
	dstRoot  string
	jobs     chan copyJob
	wg       sync.WaitGroup
	dirs     []dirMeta // walker only

	mu  sync.Mutex
	err error
}

func newTreeCopy(ctx context.Context, mainCheckout, realMain, wtDir string) *treeCopy {
	cctx, cancel := context.WithCancel(ctx)
	tc := &treeCopy{
		ctx:      cctx,
		cancel:   cancel,
		parent:   ctx,
		srcRoots: []string{mainCheckout, realMain},
		srcRoot:  mainCheckout,
		dstRoot:  wtDir,
		jobs:     make(chan copyJob, 256),
	}
	for range copyWorkers {
		tc.wg.Go(func() {
			for j := range tc.jobs {
				if tc.ctx.Err() != nil {
					continue
				}
				if err := tc.do(j); err != nil {
					tc.fail(fmt.Errorf("copy %s: %w", j.rel, err))
				}
			}
		})
	}
	return tc
}

// fail records the first error and stops the copy.
func (tc *treeCopy) fail(err error) {
	tc.mu.Lock()
	if tc.err == nil {
		tc.err = err
	}
	tc.mu.Unlock()
	tc.cancel()
}

// walk copies the tree at rel: directories now, files and symlinks through
// the workers.
func (tc *treeCopy) walk(rel string) error {
	src := filepath.Join(tc.srcRoot, rel)
	dst := filepath.Join(tc.dstRoot, rel)
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("copy %s: %w", rel, err)
		}
		if err := tc.ctx.Err(); err != nil {
			return err
		}
		sub, err := filepath.Rel(src, p)
		if err != nil {
			return fmt.Errorf("copy %s: %w", rel, err)
		}
		target := filepath.Join(dst, sub)
		switch t := d.Type(); {
		case t.IsDir():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
			// Owner-writable until its contents are in; the real mode is
			// set at the end.
			if err := os.Mkdir(target, 0o700); err != nil {
				return fmt.Errorf("copy %s: %w", rel, err)
			}
			tc.dirs = append(tc.dirs, dirMeta{target, info})
		case t&fs.ModeSymlink != 0:
			return tc.send(copyJob{rel: rel, src: p, dst: target, symlink: true})
		case t.IsRegular():
			return tc.send(copyJob{rel: rel, src: p, dst: target})
		}
		return nil
	})
}

func (tc *treeCopy) send(j copyJob) error {
	select {
	case tc.jobs <- j:
		return nil
	case <-tc.ctx.Done():
		return tc.ctx.Err()
	}
}

// finish waits for the workers, sets the directories' modes and times
// (deepest first) and returns the first error.
func (tc *treeCopy) finish() error {
	close(tc.jobs)
	tc.wg.Wait()
	defer tc.cancel()
	tc.mu.Lock()
	err := tc.err
	tc.mu.Unlock()
	if perr := tc.parent.Err(); perr != nil {
		return fmt.Errorf("copy: %w", perr)
	}
	if err != nil {
		return err
	}
	for _, d := range slices.Backward(tc.dirs) {
		if err := os.Chmod(d.path, d.info.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		if st, ok := d.info.Sys().(*syscall.Stat_t); ok {
			ts := []unix.Timespec{unix.Timespec(st.Atim), unix.Timespec(st.Mtim)}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, d.path, ts, 0); err != nil {
				return fmt.Errorf("copy: set times of %s: %w", d.path, err)
			}
		}
	}
	return nil
}

// do copies one file or recreates one symlink.
func (tc *treeCopy) do(j copyJob) error {
	if !j.symlink {
		return tc.c.copyFile(j.src, j.dst)
	}
	target, err := os.Readlink(j.src)
	if err != nil {
		return err
	}
	if filepath.IsAbs(target) {
		clean := filepath.Clean(target)
		for _, root := range tc.srcRoots {
			if isWithin(root, clean) {
				// Relative, so that the link still holds when the
				// worktree is moved (a pool worktree when it is claimed).
				rest, _ := filepath.Rel(root, clean)
				if rel, err := filepath.Rel(filepath.Dir(j.dst), filepath.Join(tc.dstRoot, rest)); err == nil {
					target = rel
				} else {
					target = filepath.Join(tc.dstRoot, rest)
				}
				break
			}
		}
	}
	if err := os.Symlink(target, j.dst); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(j.src, &st); err == nil {
		ts := []unix.Timespec{st.Atim, st.Mtim}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, j.dst, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("set times of %s: %w", j.dst, err)
		}
	}
	return nil
}

// reflinkOff turns cloning off and copies every file through a buffer
// (copy_file_range shares extents on its own on XFS and btrfs), for
// measuring plain copies (tests only).
var reflinkOff bool

// copyBufs holds the buffers of buffered copies.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 128<<10); return &b }}

// copier copies regular files (see fill): never a hardlink. It is safe
// for concurrent use.
type copier struct {
	noReflink atomic.Bool  // the filesystem refused a clone: stop trying
	reflinked atomic.Int64 // files cloned
	copied    atomic.Int64 // files copied
}

// copyFile copies the regular file src to dst, which must not exist, with
// src's permission bits and access and modification times.
func (c *copier) copyFile(src, dst string) (err error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return fmt.Errorf("stat %s: %w", src, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s is not a regular file", src)
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(dst)
		}
	}()
	if err := c.fill(out, in, st.Size); err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	fd := int(out.Fd())
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("chmod %s: %w", dst, err)
	}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{st.Atim, st.Mtim}, 0); err != nil {
		return fmt.Errorf("set times of %s: %w", dst, err)
	}
	return out.Close()
}

// fill writes the contents of in (size bytes) into the empty file out: a
// clone (FICLONE) where the filesystem can, else copy_file_range (a copy
// in the kernel; XFS and btrfs share extents there too), else a buffer.
func (c *copier) fill(out, in *os.File, size int64) error {
	if size == 0 {
		return nil
	}
	if !c.noReflink.Load() && !reflinkOff {
		err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
		if err == nil {
			c.reflinked.Add(1)
			return nil
		}
		switch {
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOTTY), errors.Is(err, unix.ENOSYS),
			errors.Is(err, unix.EXDEV), errors.Is(err, unix.EINVAL):
			// This filesystem (or pair of filesystems) cannot clone.
			c.noReflink.Store(true)
		}
		// Any other refusal: copy this file.
	}
	var err error
	if reflinkOff {
		buf := copyBufs.Get().(*[]byte)
		// Hide ReadFrom/WriteTo: a plain read/write loop.
		_, err = io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, *buf)
		copyBufs.Put(buf)
	} else {
		_, err = io.Copy(out, in) // *os.File's ReadFrom: copy_file_range, sendfile, then a buffer
	}
	if err != nil {
		return err
	}
	c.copied.Add(1)
	return nil
}

// WorktreeInclude returns what .worktreeinclude at the top of mainCheckout
// selects for copying into worktrees, as paths relative to mainCheckout
// (directories without a trailing "/"), sorted; a missing file selects
// nothing.
//
// It follows Claude Code's convention: the file has gitignore syntax
// (comments, "!" negations, "dir/" patterns, "**", anchoring with a
// leading "/", each exactly as in .gitignore), and only paths that match
// it and that git ignores are selected. Git itself reads both:
//
//	git ls-files --others --ignored --directory --exclude-from=.worktreeinclude
//	git ls-files --others --ignored --directory --exclude-standard
//
// and the result is their intersection. With --directory a directory whose
// whole contents match (node_modules/) is one path, not thousands of
// files. Tracked files are never selected (they come with the checkout),
// nor untracked files git does not ignore (their copies would be
// committed to the agent's branch).
func WorktreeInclude(ctx context.Context, mainCheckout string) ([]string, error) {
	file := filepath.Join(mainCheckout, WorktreeIncludeFile)
	if fi, err := os.Stat(file); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read %s: %w", WorktreeIncludeFile, err)
	} else if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read %s: not a regular file", WorktreeIncludeFile)
	}
	matched, err := listIgnored(ctx, mainCheckout, "--exclude-from="+file)
	if err != nil || len(matched) == 0 {
		return nil, err
	}
	ignored, err := listIgnored(ctx, mainCheckout, "--exclude-standard")
	if err != nil {
		return nil, err
	}
	return intersectPaths(matched, ignored), nil
}

// listIgnored lists the untracked paths of dir that the exclude rules
// given by excludeFlag match, a directory whose whole contents match as
// one path (slash-separated, without the trailing "/").
func listIgnored(ctx context.Context, dir, excludeFlag string) ([]string, error) {
	out, err := worktree.Git(ctx, dir, "ls-files", "-z", "--others", "--ignored", "--directory", excludeFlag)
	if err != nil {
		return nil, fmt.Errorf("%s: list the files it names: %w", WorktreeIncludeFile, err)
	}
	var paths []string
	for _, p := range strings.Split(out, "\x00") {
		if p = strings.TrimSuffix(p, "/"); p != "" {
			paths = append(paths, p)
		}
	}
	return innermost(paths), nil
}

// innermost drops the directories that have other paths of the list in
// them. `git ls-files --ignored --directory` lists a directory whose
// every file is matched by patterns on the files (packages/*/.env) as
// well as those files; the files are what the patterns name (and what
// `git check-ignore` reports), so they are kept. A directory a pattern
// names (node_modules/) is listed alone, and kept.
func innermost(paths []string) []string {
	sorted := slices.Sorted(slices.Values(paths))
	var out []string
	for _, p := range sorted {
		prefix := p + "/"
		i, _ := slices.BinarySearch(sorted, prefix)
		if i < len(sorted) && strings.HasPrefix(sorted[i], prefix) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// intersectPaths returns the paths covered by both sets, each set a list
// of files and directories (a directory stands for everything in it):
// a path of a that lies in one of b, and a path of b that lies in one of
// a. Both are slash-separated; the result is sorted, without duplicates,
// in the OS's separators.
func intersectPaths(a, b []string) []string {
	inB := make(map[string]bool, len(b))
	for _, p := range b {
		inB[p] = true
	}
	sortedB := slices.Sorted(slices.Values(b))
	seen := map[string]bool{}
	var out []string
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			out = append(out, filepath.FromSlash(p))
		}
	}
	for _, p := range a {
		// p inside (or equal to) a path of b?
		for q := p; ; {
			if inB[q] {
				add(p)
				break
			}
			i := strings.LastIndexByte(q, '/')
			if i < 0 {
				break
			}
			q = q[:i]
		}
		// paths of b inside the directory p
		prefix := p + "/"
		i, _ := slices.BinarySearch(sortedB, prefix)
		for ; i < len(sortedB) && strings.HasPrefix(sortedB[i], prefix); i++ {
			add(sortedB[i])
		}
	}
	slices.Sort(out)
	return out
}
