package worktree

import (
	"fmt"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func benchRepo(b *testing.B) string {
	repo := newRepo(b)
	for i := 0; i < 300; i++ {
		must(b, repo, "branch", fmt.Sprintf("b%d", i))
	}
	must(b, repo, "pack-refs", "--all")
	must(b, repo, "branch", "loose")
	return repo
}

func BenchmarkBranchExistsGoGit(b *testing.B) {
	repo := benchRepo(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ok, err := BranchExists(ctx, repo, "b150")
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
func BenchmarkBranchExistsCLI(b *testing.B) {
	repo := benchRepo(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ok, err := branchExistsCLI(ctx, repo, "b150")
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
func BenchmarkHeadCLI(b *testing.B) {
	repo := benchRepo(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Head(ctx, repo); err != nil {
			b.Fatal(err)
		}
	}
}
func BenchmarkHeadGoGit(b *testing.B) {
	repo := benchRepo(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := openRepo(repo)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Head(); err != nil {
			b.Fatal(err)
		}
	}
}
func BenchmarkResolveGoGit(b *testing.B) {
	repo := benchRepo(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := openRepo(repo)
		if err != nil {
			b.Fatal(err)
		}
		h, err := r.ResolveRevision(plumbing.Revision("b150"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.CommitObject(*h); err != nil {
			b.Fatal(err)
		}
	}
}
