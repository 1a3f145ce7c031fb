package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// clownSub is a Clown.Talk WebSocket subscriber (motehub /ws).
type clownSub struct {
	ws  *wsConn
	st  *subState
	buf []byte
}

var (
	topicConfigOK = []byte("clown.talk/-/config/ok")
	topicError    = []byte("clown.talk/-/error")
)

// clownConfig is what a Clown.Talk subscriber asks for in its config/set.
type clownConfig struct {
	Subscribe []string `json:"subscribe"`
	Batch     bool     `json:"batch,omitempty"`
	Overflow  string   `json:"overflow,omitempty"` // "" (the hub's default), "close" or "latest"
}

// connectClown dials url, sends cfg as config/set and returns once the hub
// answered config/ok. maxMessage bounds one WebSocket message it reads.
func connectClown(ctx context.Context, url string, cfg clownConfig, maxMessage int, st *subState) (*clownSub, error) {
	ws, err := dialWS(ctx, url, []string{"clown.talk"}, maxMessage)
	if err != nil {
		return nil, err
	}
	set, _ := json.Marshal(cfg)
	hello := fmt.Appendf(nil, `["clown.talk/-/config/set",%s]`, set)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(10 * time.Second)
	}
	if err := ws.WriteFrame(wsText, hello, deadline); err != nil {
		_ = ws.conn.Close()
		return nil, fmt.Errorf("clown.talk: send config/set: %w", err)
	}
	s := &clownSub{ws: ws, st: st}
	// The first line must be config/ok; anything before it is an error.
	_ = ws.conn.SetReadDeadline(deadline)
	_, msg, err := ws.ReadMessage(s.buf)
	_ = ws.conn.SetReadDeadline(time.Time{})
	if err != nil {
		_ = ws.conn.Close()
		return nil, fmt.Errorf("clown.talk: wait for config/ok: %w", err)
	}
	s.buf = msg
	first, rest, _ := bytes.Cut(msg, []byte{'\n'})
	if topic, _, ok := scanClownLine(first); !ok || !bytes.Equal(topic, topicConfigOK) {
		_ = ws.conn.Close()
		return nil, fmt.Errorf("clown.talk: first line %.200q, want config/ok", first)
	}
	s.lines(rest) // batch mode may have joined more lines
	return s, nil
}

func (s *clownSub) read() error {
	for {
		_, msg, err := s.ws.ReadMessage(s.buf)
		if err != nil {
			return err
		}
		s.buf = msg
		s.lines(msg)
	}
}

func (s *clownSub) lines(frame []byte) {
	forEachLine(frame, func(line []byte) {
		topic, rest, ok := scanClownLine(line)
		if ok && bytes.Equal(topic, topicError) {
			s.st.sink.others.Add(1)
			return
		}
		s.st.got(rest)
	})
}

func (s *clownSub) ping() error { return nil } // the hub pings; ReadMessage answers
func (s *clownSub) close()      { _ = s.ws.Close() }
