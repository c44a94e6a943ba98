package agents

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// storedEvent is one line of events.jsonl: the event plus how far into the
// output files the daemon had read when it wrote it, so a restarted daemon
// resumes tailing where the last one stopped.
type storedEvent struct {
	Event
	StdoutOff int64 `json:"_so"`
	StderrOff int64 `json:"_eo"`
}

// eventLog appends an agent's events to its events.jsonl.
type eventLog struct {
	f         *os.File
	seq       int64
	stdoutOff int64
	stderrOff int64
}

// openEventLog opens dir/events.jsonl for appending, recovering the last
// sequence number and output offsets, and cutting off a line that a crash
// left half-written.
func openEventLog(dir string) (*eventLog, error) {
	path := filepath.Join(dir, eventsFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open event log: %w", err)
	}
	l := &eventLog{f: f}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read event log: %w", err)
	}
	good := bytes.LastIndexByte(data, '\n') + 1
	if good < len(data) {
		if err := f.Truncate(int64(good)); err != nil {
			f.Close()
			return nil, fmt.Errorf("repair event log: %w", err)
		}
	}
	if good > 0 {
		body := data[:good-1]
		last := body[bytes.LastIndexByte(body, '\n')+1:]
		var se storedEvent
		if err := json.Unmarshal(last, &se); err == nil {
			l.seq, l.stdoutOff, l.stderrOff = se.Seq, se.StdoutOff, se.StderrOff
		}
	}
	if _, err := f.Seek(int64(good), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("open event log: %w", err)
	}
	return l, nil
}

// append numbers evs, writes them with the current offsets and returns them.
func (l *eventLog) append(evs []Event) ([]Event, error) {
	var buf bytes.Buffer
	for i := range evs {
		l.seq++
		evs[i].Seq = l.seq
		line, err := json.Marshal(storedEvent{Event: evs[i], StdoutOff: l.stdoutOff, StderrOff: l.stderrOff})
		if err != nil {
			return nil, fmt.Errorf("encode event: %w", err)
		}
		buf.Write(line)
		buf.WriteByte('\n')
	}
	if _, err := l.f.Write(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("append events: %w", err)
	}
	return evs, nil
}

func (l *eventLog) close() error { return l.f.Close() }

// readEvents returns the events of dir with seq >= from, at most max of them.
func readEvents(dir string, from int64, max int) ([]Event, error) {
	f, err := os.Open(filepath.Join(dir, eventsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read events: %w", err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 64<<20)
	for sc.Scan() {
		var ev Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			continue // a torn last line; the next append repairs it
		}
		if ev.Seq < from {
			continue
		}
		out = append(out, ev)
		if max > 0 && len(out) >= max {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("read events: %w", err)
	}
	return out, nil
}
