package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// sseSub is a Server-Sent Events subscriber (motehub /events). It speaks
// HTTP/1.1 on a raw connection: one goroutine, no transport pool.
type sseSub struct {
	conn  net.Conn
	lines *bufio.Reader
	body  io.Closer
	st    *subState
}

var (
	sseData = []byte("data: ")
	sseID   = []byte("id: ")
)

func connectSSE(ctx context.Context, rawURL string, st *subState) (*sseSub, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("sse: scheme %q, want http", u.Scheme)
	}
	conn, err := dialLoopback(ctx, u.Host)
	if err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	_ = conn.SetDeadline(deadline)
	s, err := startSSE(conn, u)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	_ = conn.SetDeadline(time.Time{})
	s.st = st
	return s, nil
}

func startSSE(conn net.Conn, u *url.URL) (*sseSub, error) {
	req := fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n", u.RequestURI(), u.Host)
	if _, err := io.WriteString(conn, req); err != nil {
		return nil, fmt.Errorf("sse: send request: %w", err)
	}
	br := bufio.NewReaderSize(conn, 16<<10)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet, URL: u})
	if err != nil {
		return nil, fmt.Errorf("sse: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		_ = resp.Body.Close()
		return nil, fmt.Errorf("sse: %s", resp.Status)
	}
	s := &sseSub{conn: conn, body: resp.Body, lines: bufio.NewReaderSize(resp.Body, 16<<10)}
	// The stream starts with "retry:" and then an event with only an id: from
	// there on the client is registered for live messages.
	sawID := false
	for range 64 {
		line, err := s.line()
		if err != nil {
			return nil, fmt.Errorf("sse: wait for the first event id: %w", err)
		}
		switch {
		case bytes.HasPrefix(line, sseID):
			sawID = true
		case len(line) == 0 && sawID:
			return s, nil
		}
	}
	return nil, errors.New("sse: no id-only event within the first 64 lines")
}

// line returns the next line without its end; valid until the next call.
func (s *sseSub) line() ([]byte, error) {
	line, err := s.lines.ReadSlice('\n')
	if err != nil {
		return nil, err
	}
	line = line[:len(line)-1]
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	return line, nil
}

func (s *sseSub) read() error {
	for {
		line, err := s.line()
		if err != nil {
			return err
		}
		if bytes.HasPrefix(line, sseData) {
			s.st.got(line[len(sseData):])
		}
		// id:, event:, retry:, comments and blank lines carry nothing to count.
	}
}

func (s *sseSub) ping() error { return nil } // the hub sends keep-alive comments
func (s *sseSub) close()      { _ = s.conn.Close() }
