package provision

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkCopyIgnored copies a node_modules-like tree of 30,000 files
// (1,500 directories, 200 B to 8 KiB each, ~120 MB, plus .bin symlinks)
// from a main checkout as CopyIgnored does ("auto": cloned where the
// filesystem can, else copy_file_range) and with every file copied through
// a user-space buffer ("plain"). Set PROVISION_BENCH_DIR to run it on another
// filesystem (XFS, btrfs) than the temporary directory's:
//
//	go test -run '^$' -bench CopyIgnored -benchtime 3x ./worktree/provision/
func BenchmarkCopyIgnored(b *testing.B) {
	base := os.Getenv("PROVISION_BENCH_DIR")
	if base == "" {
		base = b.TempDir()
	}
	root, err := os.MkdirTemp(base, "bench-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(root)
	main := filepath.Join(root, "main")
	if err := os.Mkdir(main, 0o755); err != nil {
		b.Fatal(err)
	}
	git(b, main, "init", "-q")
	writeFile(b, filepath.Join(main, ".gitignore"), "node_modules/\n", 0o644)
	git(b, main, "add", ".gitignore")
	git(b, main, "commit", "-q", "-m", "init")
	rng := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 8<<10)
	for i := range buf {
		buf[i] = byte(rng.IntN(256))
	}
	var files, bytes int
	for d := range 1500 {
		dir := filepath.Join(main, "node_modules", fmt.Sprintf("pkg%d", d/10), fmt.Sprintf("lib%d", d%10))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := range 20 {
			n := 200 + rng.IntN(8<<10-200)
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d.js", f)), buf[:n], 0o644); err != nil {
				b.Fatal(err)
			}
			files++
			bytes += n
		}
		if d%10 == 0 {
			symlink(b, fmt.Sprintf("../pkg%d/lib0/f0.js", d/10), filepath.Join(main, "node_modules", ".bin", fmt.Sprintf("cli%d", d/10)))
		}
	}
	b.Logf("tree: %d files, %d MB in %s", files, bytes>>20, root)

	for _, mode := range []string{"auto", "plain"} {
		b.Run(mode, func(b *testing.B) {
			reflinkOff = mode == "plain"
			defer func() { reflinkOff = false }()
			for i := 0; b.Loop(); i++ {
				wt := filepath.Join(root, fmt.Sprintf("wt-%s-%d", mode, i))
				if err := os.Mkdir(wt, 0o755); err != nil {
					b.Fatal(err)
				}
				if _, err := CopyIgnored(context.Background(), main, wt, []string{"node_modules"}); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				os.RemoveAll(wt)
				b.StartTimer()
			}
			b.ReportMetric(float64(files)*float64(b.N)/b.Elapsed().Seconds(), "files/s")
		})
	}
}
