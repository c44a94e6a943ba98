package provision

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

func TestParseRange(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want PortRange
		err  string
	}{
		{in: "4100-4999", want: PortRange{4100, 4999}},
		{in: " 4100 - 4100 ", want: PortRange{4100, 4100}},
		{in: "1024-65535", want: PortRange{1024, 65535}},
		{in: "4100", err: "want LO-HI"},
		{in: "a-b", err: "want two port numbers"},
		{in: "80-90", err: "between 1024 and 65535"},
		{in: "4100-70000", err: "between 1024 and 65535"},
		{in: "4999-4100", err: "first port is above the last"},
		{in: "", err: "want LO-HI"},
	} {
		got, err := ParseRange(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseRange(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	if s := (PortRange{4100, 4999}).String(); s != "4100-4999" {
		t.Errorf("String() = %q", s)
	}
}

// testRange is a range of ports that tests allocate from, below the
// kernel's ephemeral ports (32768-60999) so that outgoing connections of
// other tests do not land in it; blocks that happen to be busy on this
// machine are skipped like any other.
var testRange = PortRange{Lo: 24000, Hi: 24999}

func TestAllocateSkipsPortTakenByAnotherListener(t *testing.T) {
	for _, addr := range []string{"127.0.0.1", ""} { // loopback, all interfaces
		t.Run("listener on "+addr, func(t *testing.T) {
			key := "repo/agent-" + addr
			first, err := AllocatePorts(testRange, 10, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := AllocatePorts(testRange, 10, key, nil); again != first {
				t.Fatalf("same key and state gave %d, then %d", first, again)
			}
			ln, err := net.Listen("tcp", fmt.Sprintf("%s:%d", addr, first+7))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if Probe(first + 7) {
				t.Fatalf("Probe(%d) = true while another listener holds it", first+7)
			}
			got, err := AllocatePorts(testRange, 10, key, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got == first {
				t.Fatalf("block %d was given although port %d is taken", got, first+7)
			}
			if (got-testRange.Lo)%10 != 0 || got < testRange.Lo || got+9 > testRange.Hi {
				t.Fatalf("block %d is not aligned inside %s", got, testRange)
			}
		})
	}
}

func TestAllocateConcurrentDisjoint(t *testing.T) {
	const agents, per = 50, 10
	var (
		mu     sync.Mutex
		leases = map[int]string{} // start -> key
		wg     sync.WaitGroup
		errs   = make(chan error, agents)
	)
	taken := func(start, count int) bool {
		for s := range leases {
			if start < s+per && s < start+count {
				return true
			}
		}
		return false
	}
	for i := range agents {
		wg.Go(func() {
			key := fmt.Sprintf("/home/dev/repo\x00agent-%d", i)
			mu.Lock()
			defer mu.Unlock()
			start, err := AllocatePorts(testRange, per, key, taken)
			if err != nil {
				errs <- err
				return
			}
			leases[start] = key
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(leases) != agents {
		t.Fatalf("%d distinct blocks for %d agents", len(leases), agents)
	}
	used := map[int]bool{}
	for s := range leases {
		for p := s; p < s+per; p++ {
			if used[p] {
				t.Fatalf("port %d is in two blocks", p)
			}
			used[p] = true
		}
	}
}

func TestAllocateHashSpreads(t *testing.T) {
	const n = 100
	hits := map[int]int{}
	for i := range 1000 {
		hits[firstBlock(fmt.Sprintf("/home/dev/repo\x00agent-%d", i), n)]++
	}
	// 1000 keys over 100 blocks: a fair hash leaves (almost) no block
	// unused and none crowded.
	if len(hits) < 95 {
		t.Errorf("1000 keys hit only %d of %d blocks", len(hits), n)
	}
	for b, c := range hits {
		if c > 30 {
			t.Errorf("block %d is the first choice of %d keys", b, c)
		}
	}
	if firstBlock("a", n) == firstBlock("b", n) && firstBlock("a", n) == firstBlock("c", n) {
		t.Error("first choices do not depend on the key")
	}
}

func TestAllocateExhausted(t *testing.T) {
	r := PortRange{Lo: 24000, Hi: 24029}
	_, err := AllocatePorts(r, 10, "k", func(int, int) bool { return true })
	want := "no free block of 10 ports in 24000-24029 (3 blocks leased or busy): finished agents keep theirs until merged or removed, so merge or `bgagents rm` the ones you are done with (`bgagents ls`), or widen [ports] range"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v; want %q", err, want)
	}
	// A range smaller than one block.
	if _, err := AllocatePorts(PortRange{24000, 24004}, 10, "k", nil); err == nil || !strings.Contains(err.Error(), "widen [ports] range") {
		t.Fatalf("range smaller than a block: err = %v", err)
	}
	if _, err := AllocatePorts(r, 0, "k", nil); err == nil {
		t.Fatal("per = 0 accepted")
	}
	// Only the last block free: found by walking cyclically.
	got, err := AllocatePorts(r, 10, "k", func(s, _ int) bool { return s != 24020 })
	if err != nil || got != 24020 {
		t.Fatalf("got %d, %v; want 24020", got, err)
	}
}

// helperListen is the "listen" helper process: it listens on
// 127.0.0.1:$PROVISION_TEST_PORT, says "ready" and waits for its stdin to
// close.
func helperListen() {
	ln, err := net.Listen("tcp", "127.0.0.1:"+os.Getenv("PROVISION_TEST_PORT"))
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	defer ln.Close()
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin)
}

func TestAllocateSkipsPortOfAnotherProcess(t *testing.T) {
	key := "repo\x00agent-other-process"
	first, err := AllocatePorts(testRange, 10, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "PROVISION_TEST_HELPER=listen", fmt.Sprintf("PROVISION_TEST_PORT=%d", first))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	if line != "ready\n" {
		t.Fatalf("helper: %q", line)
	}
	got, err := AllocatePorts(testRange, 10, key, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got == first {
		t.Fatalf("block %d was given although another process listens on %d", got, first)
	}
}

func TestProbeIPv6Loopback(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if Probe(port) {
		t.Errorf("Probe(%d) = true while [::1]:%d is taken", port, port)
	}
}
