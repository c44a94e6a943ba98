package agents

import (
	"context"
	"sync"
)

// Notice is one thing sessions hear about: exactly one field is set.
type Notice struct {
	// Agent is a full snapshot of a record that changed.
	Agent *Agent
	// Output carries new events of one agent.
	Output *OutputNotice
	// Progress reports provisioning steps of one agent.
	Progress *ProgressNotice
}

// OutputNotice is a batch of new events of one agent.
type OutputNotice struct {
	ID     string  `json:"id"`
	Events []Event `json:"events"`
}

// ProgressNotice is one step of preparing an agent.
type ProgressNotice struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Message string `json:"message"`
	Done    bool   `json:"done"`
	Failed  bool   `json:"failed,omitempty"`
}

// Bus fans notices out to subscribers. Publish never blocks: each
// subscriber has its own queue, so a slow editor cannot stall an agent.
type Bus struct {
	mu   sync.Mutex // guards subs
	subs map[*Sub]struct{}
}

// NewBus returns an empty bus.
func NewBus() *Bus { return &Bus{subs: map[*Sub]struct{}{}} }

// MaxQueue bounds a subscriber's queue. Past it, output and progress
// notices are dropped (a follower sees a gap in seq and fetches the log)
// and agent snapshots replace older snapshots of the same agent, so a
// client that stops reading cannot make the daemon grow without bound.
const MaxQueue = 4096

// Sub is one subscriber's queue.
type Sub struct {
	bus     *Bus
	mu      sync.Mutex // guards queue, closed and dropped
	queue   []Notice
	closed  bool
	dropped int
	wake    chan struct{}
}

// Subscribe registers a new subscriber.
func (b *Bus) Subscribe() *Sub {
	s := &Sub{bus: b, wake: make(chan struct{}, 1)}
	b.mu.Lock()
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Publish queues n for every subscriber.
func (b *Bus) Publish(n Notice) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		s.push(n)
	}
}

func (s *Sub) push(n Notice) {
	s.mu.Lock()
	switch {
	case s.closed:
	case len(s.queue) < MaxQueue:
		s.queue = append(s.queue, n)
	case n.Agent != nil:
		replaced := false
		// The newest queued snapshot of this agent is replaced, so the
		// queue still ends with the agent's current state.
		for i := len(s.queue) - 1; i >= 0; i-- {
			if q := s.queue[i].Agent; q != nil && q.ID == n.Agent.ID {
				s.queue[i] = n
				replaced = true
				break
			}
		}
		if !replaced {
			s.queue = append(s.queue, n)
		}
	default:
		s.dropped++
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Next returns the queued notices, waiting for at least one; it returns
// false when ctx ends or the subscription is closed.
func (s *Sub) Next(ctx context.Context) ([]Notice, bool) {
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return nil, false
		}
		if len(s.queue) > 0 {
			q := s.queue
			s.queue = nil
			s.mu.Unlock()
			return q, true
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil, false
		case <-s.wake:
		}
	}
}

// Dropped returns how many notices were dropped because the queue was full.
func (s *Sub) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dropped
}

// Close unsubscribes.
func (s *Sub) Close() {
	s.bus.mu.Lock()
	delete(s.bus.subs, s)
	s.bus.mu.Unlock()
	s.mu.Lock()
	s.closed = true
	s.queue = nil
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}
