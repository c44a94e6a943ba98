package agents

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTransitions(t *testing.T) {
	allowed := [][2]State{
		{StateQueued, StateProvisioning}, {StateProvisioning, StateRunning}, {StateRunning, StateSucceeded},
		{StateRunning, StateNeedsInput}, {StateNeedsInput, StateRunning}, {StateSucceeded, StateMerged},
		{StateFailed, StateDiscarded}, {StateRunning, StateLost}, {StateQueued, StateCancelled},
	}
	for _, tr := range allowed {
		if err := CheckTransition(tr[0], tr[1]); err != nil {
			t.Errorf("%s → %s refused: %v", tr[0], tr[1], err)
		}
	}
	refused := [][2]State{
		{StateMerged, StateRunning}, {StateDiscarded, StateMerged}, {StateQueued, StateSucceeded},
		{StateSucceeded, StateQueued}, {StateRunning, StateMerged}, {StateLost, StateRunning},
	}
	for _, tr := range refused {
		if err := CheckTransition(tr[0], tr[1]); err == nil {
			t.Errorf("%s → %s allowed", tr[0], tr[1])
		}
	}
	for _, s := range AllStates {
		if !s.Valid() {
			t.Errorf("%s not valid", s)
		}
		if _, ok := transitions[s]; !ok {
			t.Errorf("state %s has no transition entry", s)
		}
	}
	if State("sleeping").Valid() {
		t.Error("unknown state valid")
	}
}

func TestStatesAreStringsOnTheWire(t *testing.T) {
	code := 0
	a := &Agent{ID: "x", State: StateNeedsInput, ExitCode: &code, Timeout: Duration(90 * time.Second)}
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"state":"needs_input"`) || !strings.Contains(string(b), `"timeout":"1m30s"`) {
		t.Fatalf("record JSON: %s", b)
	}
	var back Agent
	if err := json.Unmarshal(b, &back); err != nil || back.State != StateNeedsInput || time.Duration(back.Timeout) != 90*time.Second {
		t.Fatalf("round trip: %+v %v", back, err)
	}
	var d Duration
	for _, bad := range []string{`"-1s"`, `"soon"`, `-3`} {
		if err := json.Unmarshal([]byte(bad), &d); err == nil {
			t.Errorf("duration %s accepted", bad)
		}
	}
}

func TestStorePersistsAndResolves(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "s.db")
	s, err := OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	for i, id := range []string{"abc111", "abc222", "def333"} {
		a := &Agent{ID: id, Name: []string{"one", "two", "three"}[i], Repo: "/r", State: StateQueued, CreatedAt: now.Add(time.Duration(i) * time.Second), UpdatedAt: now}
		if err := s.PutTransition(ctx, a, "", "spawned"); err != nil {
			t.Fatal(err)
		}
	}
	a, _ := s.Get(ctx, "def333")
	a.State = StateProvisioning
	if err := s.PutTransition(ctx, a, StateQueued, "go"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// Reopen: migrations are idempotent and the data is there.
	s, err = OpenStore(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if a, err := s.Resolve(ctx, "two", ""); err != nil || a.ID != "abc222" {
		t.Errorf("by name: %v %v", a, err)
	}
	if a, err := s.Resolve(ctx, "de", ""); err != nil || a.ID != "def333" || a.State != StateProvisioning {
		t.Errorf("by prefix: %+v %v", a, err)
	}
	if _, err := s.Resolve(ctx, "abc", ""); !errors.Is(err, ErrAmbiguous) {
		t.Errorf("ambiguous prefix: %v", err)
	}
	if _, err := s.Resolve(ctx, "a%", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("LIKE wildcard not escaped: %v", err)
	}
	if _, err := s.Resolve(ctx, "zzz", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown: %v", err)
	}
	h, err := s.History(ctx, "def333")
	if err != nil || len(h) != 2 || h[1].From != StateQueued || h[1].To != StateProvisioning {
		t.Errorf("history %+v %v", h, err)
	}
	list, _ := s.List(ctx, "/r", []State{StateQueued})
	if len(list) != 2 || list[0].ID != "abc222" {
		t.Errorf("list newest first: %+v", list)
	}
}

func TestEventLogRecoversAfterTornWrite(t *testing.T) {
	dir := t.TempDir()
	l, err := openEventLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	l.stdoutOff, l.stderrOff = 10, 3
	if _, err := l.append([]Event{{Kind: "output", Text: "a"}, {Kind: "output", Text: "b"}}); err != nil {
		t.Fatal(err)
	}
	l.close()
	// A crash mid-append leaves half a line.
	f, _ := os.OpenFile(filepath.Join(dir, eventsFile), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"seq":3,"kind":"outp`)
	f.Close()
	l, err = openEventLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	if l.seq != 2 || l.stdoutOff != 10 || l.stderrOff != 3 {
		t.Fatalf("recovered seq %d offsets %d/%d", l.seq, l.stdoutOff, l.stderrOff)
	}
	evs, _ := l.append([]Event{{Kind: "output", Text: "c"}})
	l.close()
	if evs[0].Seq != 3 {
		t.Fatalf("next seq %d", evs[0].Seq)
	}
	all, err := readEvents(dir, 2, 0)
	if err != nil || len(all) != 2 || all[0].Text != "b" || all[1].Text != "c" {
		t.Fatalf("read from 2: %+v %v", all, err)
	}
}

func TestBusNeverBlocksAndStaysBounded(t *testing.T) {
	b := NewBus()
	slow := b.Subscribe()
	defer slow.Close()
	for i := 0; i < 10000; i++ {
		b.Publish(Notice{Output: &OutputNotice{ID: "x", Events: []Event{{Seq: int64(i + 1)}}}})
		b.Publish(Notice{Agent: &Agent{ID: "x", Turns: i}})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ns, ok := slow.Next(ctx)
	if !ok || len(ns) > MaxQueue+1 {
		t.Fatalf("got %d notices, want at most %d", len(ns), MaxQueue+1)
	}
	// The newest snapshot of the agent is never lost.
	last := -1
	for _, n := range ns {
		if n.Agent != nil {
			last = n.Agent.Turns
		}
	}
	if last != 9999 {
		t.Fatalf("newest agent snapshot %d, want 9999", last)
	}
	if slow.Dropped() == 0 {
		t.Fatal("no output notice was dropped although the queue was full")
	}
	// A reader that keeps up gets everything.
	fast := b.Subscribe()
	defer fast.Close()
	b.Publish(Notice{Output: &OutputNotice{ID: "y"}})
	if ns, ok := fast.Next(ctx); !ok || len(ns) != 1 || fast.Dropped() != 0 {
		t.Fatalf("fast reader: %d notices, %d dropped", len(ns), fast.Dropped())
	}
}

// A group of variants is stored whole or not at all: when one record
// cannot be stored (here its id is taken), none of the group is.
func TestStorePutNewIsAllOrNothing(t *testing.T) {
	ctx := context.Background()
	s, err := OpenStore(ctx, filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	taken := &Agent{ID: "taken1", Name: "old", Repo: "/r", State: StateSucceeded, CreatedAt: now, UpdatedAt: now}
	if err := s.PutTransition(ctx, taken, "", "spawned"); err != nil {
		t.Fatal(err)
	}
	group := []*Agent{
		{ID: "new111", Name: "fix-v1", Repo: "/r", State: StateQueued, Group: "g1", Variant: 1, CreatedAt: now, UpdatedAt: now},
		{ID: "taken1", Name: "fix-v2", Repo: "/r", State: StateQueued, Group: "g1", Variant: 2, CreatedAt: now, UpdatedAt: now},
	}
	if err := s.PutNew(ctx, group, "spawned"); err == nil {
		t.Fatal("a group with a taken id was stored")
	}
	if _, err := s.Get(ctx, "new111"); !errors.Is(err, ErrNotFound) {
		t.Errorf("the first variant of a failed group was kept: %v", err)
	}
	if a, err := s.Get(ctx, "taken1"); err != nil || a.Name != "old" {
		t.Errorf("the existing agent changed: %+v %v", a, err)
	}
	group[1].ID = "new222"
	if err := s.PutNew(ctx, group, "spawned"); err != nil {
		t.Fatal(err)
	}
	if list, _ := s.List(ctx, "/r", []State{StateQueued}); len(list) != 2 {
		t.Errorf("group stored: %d queued agents", len(list))
	}
}
