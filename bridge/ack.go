package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// Command acknowledgement. A client that sent config/set {"ack": true} gets,
// for every command it sends (a publish to a topic ending in "/set"), one
//
//	["clown.talk/-/ack", {"topic": ".../set", "ok": true, "ms": 12}]
//
// when the device confirms it: by publishing its state on the command topic
// without "/set" (Clown.Talk: relay/i2c0-3b after relay/i2c0-3b/set;
// HARDWARIO: led/-/state after led/-/state/set) with the state asked for, or
// by an MQTT v5 response carrying the command's correlation data. Until
// Config.AckTimeout passes, a state that differs from the one asked for is
// not yet a failure (a device may report its old state before it switches);
// after it, the command is reported "ok": false, with "error": "state
// differs" and the state last reported, or with "error": "timeout" when the
// device said nothing.
//
// Several commands to one device are matched in order: an echo confirms the
// oldest pending command whose asked state it shows.

// pendingCommand is a command waiting for its device.
type pendingCommand struct {
	id       string // correlation data of the MQTT v5 request
	clientID string // the client's own name for the command, if it gave one
	c        *client
	topic    string          // as the client sent it
	state    string          // absolute topic of the device's state
	want     json.RawMessage // the state asked for
	sent     time.Time
	timer    *time.Timer
	differed json.RawMessage // the last state reported that was not the one asked for
}

// ackResult is the payload of clown.talk/-/ack.
type ackResult struct {
	Topic    string          `json:"topic"`
	ID       string          `json:"id,omitempty"` // the client's name for the command
	OK       bool            `json:"ok"`
	MS       int64           `json:"ms"`
	Error    string          `json:"error,omitempty"`
	State    json.RawMessage `json:"state,omitempty"`    // what the device reported, when it differs
	Response json.RawMessage `json:"response,omitempty"` // an MQTT v5 response's payload
}

// commandSuffix marks a publish as a command.
const commandSuffix = "/set"

// acks holds the pending commands. It is guarded by Hub.mu.
type acks struct {
	byState map[string][]*pendingCommand // absolute state topic → oldest first
	byID    map[string]*pendingCommand
}

func newAcks() acks {
	return acks{byState: make(map[string][]*pendingCommand), byID: make(map[string]*pendingCommand)}
}

// wantsAcks reports whether c asked for its commands to be acknowledged.
func (h *Hub) wantsAcks(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.ack
}

// expectAck registers a command from c that is about to be published to
// absTopic, and returns it (nil when c did not ask for acks, or in is no
// command).
func (h *Hub) expectAck(c *client, in Incoming, absTopic string) (*pendingCommand, error) {
	topic, payload := in.Topic, in.Payload
	state, isCommand := strings.CutSuffix(absTopic, commandSuffix)
	if !isCommand || state == "" {
		return nil, nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !c.ack {
		return nil, nil
	}
	if c.pendingCommands >= h.cfg.MaxPendingCommands {
		return nil, errorf(CodeLimit, "%d commands are waiting for their devices, at most %d per client", c.pendingCommands, h.cfg.MaxPendingCommands)
	}
	var want bytes.Buffer
	_ = json.Compact(&want, payload) // payload is valid JSON
	cmd := &pendingCommand{id: newID(8), clientID: in.ID, c: c, topic: topic, state: state, want: want.Bytes(), sent: time.Now()}
	cmd.timer = time.AfterFunc(h.cfg.AckTimeout, func() { h.ackTimedOut(cmd) })
	h.acks.byState[state] = append(h.acks.byState[state], cmd)
	h.acks.byID[cmd.id] = cmd
	c.pendingCommands++
	return cmd, nil
}

// matchAckLocked looks at a delivered message for confirmations. Called
// under h.mu for every message, so it costs a map lookup when nothing waits.
func (h *Hub) matchAckLocked(m *Message, payload []byte, now time.Time) {
	if len(h.acks.byID) == 0 {
		return
	}
	if len(m.CorrelationData) > 0 && m.Topic == h.responseTopic {
		if cmd := h.acks.byID[string(m.CorrelationData)]; cmd != nil {
			h.settleLocked(cmd, ackResult{OK: true, Response: payload}, now)
		}
		return
	}
	pending := h.acks.byState[m.Topic]
	for _, cmd := range pending {
		if stateMatches(cmd.want, payload) {
			h.settleLocked(cmd, ackResult{OK: true}, now)
			return
		}
	}
	for _, cmd := range pending {
		cmd.differed = payload
	}
}

// settleLocked removes cmd and tells its client how it ended.
func (h *Hub) settleLocked(cmd *pendingCommand, res ackResult, now time.Time) {
	if h.acks.byID[cmd.id] != cmd {
		return // already settled
	}
	cmd.timer.Stop()
	h.forgetLocked(cmd)
	res.Topic, res.ID = cmd.topic, cmd.clientID
	res.MS = now.Sub(cmd.sent).Milliseconds()
	h.stats.acks(res)
	h.send(cmd.c, controlFrame(topicAck, res))
}

func (h *Hub) forgetLocked(cmd *pendingCommand) {
	delete(h.acks.byID, cmd.id)
	list := h.acks.byState[cmd.state]
	for i, p := range list {
		if p == cmd {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(h.acks.byState, cmd.state)
	} else {
		h.acks.byState[cmd.state] = list
	}
	cmd.c.pendingCommands--
}

func (h *Hub) ackTimedOut(cmd *pendingCommand) {
	h.mu.Lock()
	defer h.mu.Unlock()
	res := ackResult{Error: "timeout"}
	if cmd.differed != nil {
		res = ackResult{Error: "state differs", State: cmd.differed}
	}
	h.settleLocked(cmd, res, time.Now())
}

// ackFailed reports a command that could not be published.
func (h *Hub) ackFailed(cmd *pendingCommand, reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.settleLocked(cmd, ackResult{Error: reason}, time.Now())
}

// dropAcksLocked forgets c's pending commands (c is leaving).
func (h *Hub) dropAcksLocked(c *client) {
	if c.pendingCommands == 0 {
		return
	}
	for _, cmd := range h.acks.byID {
		if cmd.c == c {
			cmd.timer.Stop()
			h.forgetLocked(cmd)
		}
	}
}

// stopAcksLocked stops every timer (the hub is closing).
func (h *Hub) stopAcksLocked() {
	for _, cmd := range h.acks.byID {
		cmd.timer.Stop()
	}
	h.acks = newAcks()
}

// stateMatches reports whether a device's reported state shows what a
// command asked for: equal JSON, or for an object, every field of the
// command with an equal value (a device may report more, such as a time).
func stateMatches(want, got []byte) bool {
	if bytes.Equal(want, got) {
		return true
	}
	var w, g any
	if json.Unmarshal(want, &w) != nil || json.Unmarshal(got, &g) != nil {
		return false
	}
	return covers(w, g)
}

func covers(want, got any) bool {
	wm, ok := want.(map[string]any)
	if !ok {
		return jsonEqual(want, got)
	}
	gm, ok := got.(map[string]any)
	if !ok {
		return false
	}
	for k, wv := range wm {
		gv, ok := gm[k]
		if !ok || !covers(wv, gv) {
			return false
		}
	}
	return true
}

func jsonEqual(a, b any) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb)
}
