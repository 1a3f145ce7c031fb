package main

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestClassifyCentrifugo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want centrifugoKind
	}{
		{`{}`, centrifugoPing},
		{` {} `, centrifugoPing},
		{`{"id":1,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}`, centrifugoReply},
		{`{"id":2,"error":{"code":103,"message":"permission denied"}}`, centrifugoReply},
		{`{"push":{"channel":"bench","pub":{"data":{"s":1,"t":2,"p":"x"}}}}`, centrifugoPush},
		{`{"push":{"channel":"bench","join":{"info":{}}}}`, centrifugoPush},
		{`{"something":"else"}`, centrifugoOther},
	} {
		if got := classifyCentrifugo([]byte(tc.line)); got != tc.want {
			t.Errorf("%s: kind %d, want %d", tc.line, got, tc.want)
		}
	}
}

func TestParseCentrifugoReply(t *testing.T) {
	t.Parallel()
	if err := parseCentrifugoReply([]byte(`{"id":1,"connect":{"client":"c"}}`), 1); err != nil {
		t.Errorf("connect reply: %v", err)
	}
	if err := parseCentrifugoReply([]byte(`{"id":2,"subscribe":{}}`), 2); err != nil {
		t.Errorf("subscribe reply: %v", err)
	}
	err := parseCentrifugoReply([]byte(`{"id":2,"error":{"code":103,"message":"permission denied"}}`), 2)
	if !errors.Is(err, errCentrifugoRefused) {
		t.Errorf("error reply: %v, want errCentrifugoRefused", err)
	}
	for _, bad := range []string{`{"id":1,"connect":{}}`, `{"id":2}`, `not json`} {
		if err := parseCentrifugoReply([]byte(bad), 2); err == nil {
			t.Errorf("%s accepted as the reply to command 2", bad)
		}
	}
}

func TestCentrifugoPublishBody(t *testing.T) {
	t.Parallel()
	body := appendCentrifugoPublish(nil, 42, 1732000000000000000, 100)
	var v struct {
		Channel string          `json:"channel"`
		Data    json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	seq, sent, ok := scanSeqTime(v.Data)
	if v.Channel != benchChannel || len(v.Data) != 100 || !ok || seq != 42 || sent != 1732000000000000000 {
		t.Errorf("body %s: channel %q, data of %d bytes, seq %d, sent %d", body, v.Channel, len(v.Data), seq, sent)
	}
	// What a subscriber receives holds the payload: the scanner finds it.
	push := `{"push":{"channel":"bench","pub":{"data":` + string(v.Data) + `}}}`
	if seq, _, ok := scanSeqTime([]byte(push)); !ok || seq != 42 {
		t.Errorf("push %s: seq %d, ok %v", push, seq, ok)
	}
}
