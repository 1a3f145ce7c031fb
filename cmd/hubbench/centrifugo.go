package main

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Centrifugo's JSON client protocol (centrifugal.dev, "Client protocol"):
// commands and replies are JSON objects, several to a WebSocket frame
// separated by newlines. A subscriber sends
//
//	{"id":1,"connect":{}}
//	{"id":2,"subscribe":{"channel":"bench"}}
//
// and gets a reply with the same id to each; publications then come as
// {"push":{"channel":"bench","pub":{"data":{...}}}}. The server pings with
// an empty object {} and expects {} back. Replies to commands are decoded
// (they come once per connection); pushes are only scanned for the bench
// payload's "s" and "t".

// centrifugoKind is what one line from Centrifugo is.
type centrifugoKind int

const (
	centrifugoOther centrifugoKind = iota // anything else: counted, not used
	centrifugoPing                        // {}: answer {}
	centrifugoPush                        // an asynchronous push (a publication, ...)
	centrifugoReply                       // the reply to a command: it has an id
)

var (
	centrifugoPingLine = []byte("{}")
	centrifugoPushKey  = []byte(`"push":`)
	centrifugoIDKey    = []byte(`{"id":`)
)

// classifyCentrifugo tells a line's kind without decoding it. A reply
// starts with its id (Centrifugo writes the id first); a push has no id.
func classifyCentrifugo(line []byte) centrifugoKind {
	line = bytes.TrimSpace(line)
	switch {
	case bytes.Equal(line, centrifugoPingLine):
		return centrifugoPing
	case bytes.HasPrefix(line, centrifugoIDKey):
		return centrifugoReply
	case bytes.Contains(line, centrifugoPushKey):
		return centrifugoPush
	}
	return centrifugoOther
}

// centrifugoReplyMsg is a reply to a command, as far as the handshake needs.
type centrifugoReplyMsg struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Connect   json.RawMessage `json:"connect"`
	Subscribe json.RawMessage `json:"subscribe"`
}

// parseCentrifugoReply decodes the reply to command id and reports an error
// reply as an error.
func parseCentrifugoReply(line []byte, id uint32) error {
	var r centrifugoReplyMsg
	if err := json.Unmarshal(line, &r); err != nil {
		return fmt.Errorf("centrifugo: reply %.200q: %w", line, err)
	}
	if r.ID != id {
		return fmt.Errorf("centrifugo: reply to command %d, want %d", r.ID, id)
	}
	if r.Error != nil {
		return fmt.Errorf("%w: command %d answered with error %d %s", errCentrifugoRefused, id, r.Error.Code, r.Error.Message)
	}
	if r.Connect == nil && r.Subscribe == nil {
		return fmt.Errorf("centrifugo: reply %.200q has neither connect nor subscribe", line)
	}
	return nil
}

// centrifugoConnectCmd and centrifugoSubscribeCmd are the two commands a
// subscriber sends, in one frame.
const (
	centrifugoConnectCmd   = `{"id":1,"connect":{}}`
	centrifugoSubscribeCmd = `{"id":2,"subscribe":{"channel":"` + benchChannel + `"}}`
)
