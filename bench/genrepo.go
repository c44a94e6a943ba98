// Package bench holds the spawn benchmark on a generated large repository:
// bgagents with a warm pool, bgagents cold, and the peers' path (git
// worktree add + cp -a node_modules), measured in one run.
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
)

// Shape is the size of a generated repository.
type Shape struct {
	Files       int // tracked files
	FileBytes   int // average size of a tracked file
	ModuleFiles int // files in the ignored node_modules
}

// FullShape is the repository: 20,000 tracked files, about 200 MB,
// and a 30,000-file ignored node_modules.
var FullShape = Shape{Files: 20000, FileBytes: 10000, ModuleFiles: 30000}

// Generate writes a git repository of the given shape into dir.
func Generate(dir string, s Shape) error {
	r := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 2*s.FileBytes)
	for i := range buf {
		buf[i] = "abcdefghijklmnopqrstuvwxyz\n"[r.IntN(27)]
	}
	write := func(path string, n int) error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		off := r.IntN(len(buf) - n)
		return os.WriteFile(path, buf[off:off+n], 0o644)
	}
	for i := 0; i < s.Files; i++ {
		p := filepath.Join(dir, "src", fmt.Sprintf("pkg%03d", i/100), fmt.Sprintf("file%05d.txt", i))
		if err := write(p, s.FileBytes/2+r.IntN(s.FileBytes)); err != nil {
			return err
		}
	}
	for i := 0; i < s.ModuleFiles; i++ {
		p := filepath.Join(dir, "node_modules", fmt.Sprintf("mod%03d", i/100), fmt.Sprintf("index%05d.js", i))
		if err := write(p, 200+r.IntN(2000)); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("node_modules/\n"), 0o644); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"init", "-q", "-b", "main"},
		{"config", "user.name", "bench"},
		{"config", "user.email", "bench@bgagents.invalid"},
		{"add", "-A"},
		{"commit", "-q", "-m", "generated"},
	} {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v: %s", args, err, out)
		}
	}
	return nil
}
