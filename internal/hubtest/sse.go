package hubtest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// SSEEvent is one thing an event stream said, as EventSource would see it
// (plus the comments and retry lines it does not expose).
type SSEEvent struct {
	Event   string // the event type; "" for a plain message
	Data    string
	ID      string
	HasID   bool   // the event set an id (possibly with no data)
	Retry   string // a retry: line
	Comment string // a ": ..." line
}

// SSE reads a text/event-stream response line by line on a goroutine of its
// own, which ends when the stream does or Close is called.
type SSE struct {
	Resp   *http.Response
	events chan SSEEvent
	done   chan error
	cancel context.CancelFunc
	closed bool
}

// DialSSE opens an event stream at url with header (e.g. Last-Event-ID),
// failing the test unless the answer is 200 text/event-stream. It is closed
// when the test ends.
func DialSSE(t testing.TB, url string, header http.Header) *SSE {
	t.Helper()
	s, err := TryDialSSE(url, header)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// TryDialSSE opens an event stream; the caller must Close it.
func TryDialSSE(url string, header http.Header) (*SSE, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Accept", "text/event-stream")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		_ = resp.Body.Close()
		cancel()
		return nil, fmt.Errorf("GET %s: %s, Content-Type %q", url, resp.Status, resp.Header.Get("Content-Type"))
	}
	s := &SSE{Resp: resp, events: make(chan SSEEvent, 1<<16), done: make(chan error, 1), cancel: cancel}
	go s.read()
	return s, nil
}

func (s *SSE) read() {
	defer close(s.events)
	sc := bufio.NewScanner(s.Resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev SSEEvent
	var data []string
	emit := func(e SSEEvent) bool {
		select {
		case s.events <- e:
			return true
		default:
			s.done <- errors.New("hubtest: SSE test client buffer full")
			return false
		}
	}
	for sc.Scan() {
		line := sc.Text()
		if line == "" { // dispatch
			if data != nil || ev.HasID || ev.Event != "" {
				ev.Data = strings.Join(data, "\n")
				if !emit(ev) {
					return
				}
			}
			ev, data = SSEEvent{}, nil
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "":
			if !emit(SSEEvent{Comment: value}) {
				return
			}
		case "data":
			data = append(data, value)
		case "event":
			ev.Event = value
		case "id":
			ev.ID, ev.HasID = value, true
		case "retry":
			if !emit(SSEEvent{Retry: value}) {
				return
			}
		}
	}
	s.done <- sc.Err()
}

// Next returns the next event (comments and retry lines included), or an
// error when the stream ended or timeout passed.
func (s *SSE) Next(timeout time.Duration) (SSEEvent, error) {
	select {
	case ev, ok := <-s.events:
		if !ok {
			err := <-s.done
			if err == nil {
				err = errors.New("stream ended")
			}
			return SSEEvent{}, err
		}
		return ev, nil
	case <-time.After(timeout):
		return SSEEvent{}, fmt.Errorf("no event within %v", timeout)
	}
}

// NextMessage returns the next event that carries data, skipping comments,
// retry lines and id-only events.
func (s *SSE) NextMessage(t testing.TB) SSEEvent {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		ev, err := s.Next(time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for an SSE message: %v", err)
		}
		if ev.Data != "" {
			return ev
		}
	}
}

// Close ends the stream and waits for the reader.
func (s *SSE) Close() {
	if s.closed {
		return
	}
	s.closed = true
	s.cancel()
	_ = s.Resp.Body.Close()
	for range s.events {
	}
}
