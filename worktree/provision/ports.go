// Package provision prepares an agent's worktree: its block of ports, its copy of the database, the gitignored files it needs and its setup commands.
//
// Each piece is a building block the daemon calls while it prepares an
// agent; none of them keeps state. Whoever calls them owns the leases
// (which port blocks are given out, which databases were made) and must
// release what it made when a later step fails.
package provision

import (
	"fmt"
	"hash/fnv"
	"net"
	"strconv"
	"strings"
)

// PortRange is an inclusive range of TCP ports, e.g. 4100-4999.
type PortRange struct{ Lo, Hi int }

// String returns "Lo-Hi".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Lo, r.Hi) }

// Size returns the number of ports in the range.
func (r PortRange) Size() int { return r.Hi - r.Lo + 1 }

// Validate checks that both ends are unprivileged ports (1024..65535) and
// that Lo <= Hi.
func (r PortRange) Validate() error {
	if r.Lo < 1024 || r.Hi > 65535 || r.Lo > 65535 || r.Hi < 1024 {
		return fmt.Errorf("port range %s: ports must be between 1024 and 65535", r)
	}
	if r.Lo > r.Hi {
		return fmt.Errorf("port range %s: the first port is above the last", r)
	}
	return nil
}

// ParseRange parses "LO-HI", e.g. "4100-4999". Both ends are inclusive and
// must lie in 1024..65535 with LO <= HI.
func ParseRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return PortRange{}, fmt.Errorf("port range %q: want LO-HI, e.g. \"4100-4999\"", s)
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil {
		return PortRange{}, fmt.Errorf("port range %q: want two port numbers LO-HI, e.g. \"4100-4999\"", s)
	}
	r := PortRange{Lo: l, Hi: h}
	if err := r.Validate(); err != nil {
		return PortRange{}, err
	}
	return r, nil
}

// AllocatePorts picks a block of per consecutive ports in r for key (for
// example repository path + agent name) and returns its first port.
//
// Blocks are aligned at r.Lo + k*per and lie wholly inside r. The first
// candidate is chosen by an FNV-1a hash of key, so the same agent tends to
// get the same ports again; from there the blocks are walked cyclically.
// A block is skipped when taken(start, per) reports that it overlaps a lease
// the caller knows of (taken may be nil), or when any of its ports cannot be
// bound right now (see Probe). The result is deterministic for the same
// key, leases and busy ports.
//
// AllocatePorts records nothing: the caller must lease the block it gets
// before another allocation can see it, so concurrent callers should hold
// one lock around AllocatePorts and the lease. Probing is only a snapshot:
// a process may bind a port of the block after it was probed.
func AllocatePorts(r PortRange, per int, key string, taken func(start, count int) bool) (start int, err error) {
	if err := r.Validate(); err != nil {
		return 0, err
	}
	if per < 1 {
		return 0, fmt.Errorf("ports per agent must be at least 1, not %d", per)
	}
	n := r.Size() / per
	if n == 0 {
		return 0, fmt.Errorf("port range %s holds %d ports, fewer than a block of %d; widen [ports] range", r, r.Size(), per)
	}
	first := firstBlock(key, n)
	for i := range n {
		s := r.Lo + ((first+i)%n)*per
		if taken != nil && taken(s, per) {
			continue
		}
		if !probeBlock(s, per) {
			continue
		}
		return s, nil
	}
	return 0, fmt.Errorf("no free block of %d ports in %s (%d blocks leased or busy): finished agents keep theirs until merged or removed, so merge or `bgagents rm` the ones you are done with (`bgagents ls`), or widen [ports] range", per, r, n)
}

// firstBlock returns the index of the first candidate block for key among
// n blocks.
func firstBlock(key string, n int) int {
	h := fnv.New64a()
	h.Write([]byte(key))
	return int(h.Sum64() % uint64(n))
}

// probeBlock reports whether every port in [start, start+count) can be
// bound now.
func probeBlock(start, count int) bool {
	for p := start; p < start+count; p++ {
		if !Probe(p) {
			return false
		}
	}
	return true
}

// Probe reports whether TCP port can be bound right now both on 127.0.0.1
// and on all interfaces. Each listener is closed at once.
func Probe(port int) bool {
	if port < 1 || port > 65535 {
		return false
	}
	p := strconv.Itoa(port)
	for _, addr := range []string{"127.0.0.1:" + p, ":" + p} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}
