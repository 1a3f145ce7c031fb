package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
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

// acks holds the pending commands, under its own lock (the fan-out takes it
// inside its own, never the reverse). It tells a client how its command
// ended through send, which only queues.
type acks struct {
	timeout       time.Duration
	max           int    // pending commands per client
	responseTopic string // where MQTT v5 devices answer
	send          func(c *client, frame []byte)
	stats         *counters

	waiting atomic.Int64 // len(byID), read without the lock by observe

	mu      sync.Mutex
	byState map[string][]*pendingCommand // absolute state topic → oldest first
	byID    map[string]*pendingCommand
	perC    map[*client]int
	closed  bool
}

func newAcks(timeout time.Duration, max int, responseTopic string, send func(*client, []byte), stats *counters) *acks {
	return &acks{
		timeout: timeout, max: max, responseTopic: responseTopic, send: send, stats: stats,
		byState: make(map[string][]*pendingCommand), byID: make(map[string]*pendingCommand), perC: make(map[*client]int),
	}
}

// expectFrom registers a command from c that is about to be published to
// absTopic, and returns it (nil when c did not ask for acks, or in is no
// command).
func (a *acks) expectFrom(c *client, in Incoming, absTopic string) (*pendingCommand, error) {
	state, isCommand := strings.CutSuffix(absTopic, commandSuffix)
	if !isCommand || state == "" || !c.ack.Load() {
		return nil, nil
	}
	return a.expect(c, in, state)
}

// expect registers c's command in for the device state topic state.
func (a *acks) expect(c *client, in Incoming, state string) (*pendingCommand, error) {
	var want bytes.Buffer
	_ = json.Compact(&want, in.Payload) // payload is valid JSON
	cmd := &pendingCommand{id: newID(8), clientID: in.ID, c: c, topic: in.Topic, state: state, want: want.Bytes(), sent: time.Now()}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return nil, nil
	}
	if a.perC[c] >= a.max {
		return nil, errorf(CodeLimit, "%d commands are waiting for their devices, at most %d per client", a.perC[c], a.max)
	}
	cmd.timer = time.AfterFunc(a.timeout, func() { a.timedOut(cmd) })
	a.byState[state] = append(a.byState[state], cmd)
	a.byID[cmd.id] = cmd
	a.perC[c]++
	a.waiting.Add(1)
	return cmd, nil
}

// observe looks at a delivered message for confirmations. The hub calls it
// for every message, after the fan-out (a client sees the state, then the
// ack): it costs an atomic load when nothing waits.
func (a *acks) observe(topic string, correlation, payload []byte, now time.Time) {
	if a.waiting.Load() == 0 {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(correlation) > 0 && topic == a.responseTopic {
		if cmd := a.byID[string(correlation)]; cmd != nil {
			a.settleLocked(cmd, ackResult{OK: true, Response: payload}, now)
		}
		return
	}
	pending := a.byState[topic]
	for _, cmd := range pending {
		if stateMatches(cmd.want, payload) {
			a.settleLocked(cmd, ackResult{OK: true}, now)
			return
		}
	}
	for _, cmd := range pending {
		cmd.differed = payload
	}
}

// settleLocked removes cmd and tells its client how it ended.
func (a *acks) settleLocked(cmd *pendingCommand, res ackResult, now time.Time) {
	if a.byID[cmd.id] != cmd {
		return // already settled
	}
	cmd.timer.Stop()
	a.forgetLocked(cmd)
	res.Topic, res.ID = cmd.topic, cmd.clientID
	res.MS = now.Sub(cmd.sent).Milliseconds()
	a.stats.acks(res)
	a.send(cmd.c, controlFrame(topicAck, res))
}

func (a *acks) forgetLocked(cmd *pendingCommand) {
	delete(a.byID, cmd.id)
	list := a.byState[cmd.state]
	for i, p := range list {
		if p == cmd {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(a.byState, cmd.state)
	} else {
		a.byState[cmd.state] = list
	}
	if a.perC[cmd.c]--; a.perC[cmd.c] <= 0 {
		delete(a.perC, cmd.c)
	}
	a.waiting.Add(-1)
}

func (a *acks) timedOut(cmd *pendingCommand) {
	a.mu.Lock()
	defer a.mu.Unlock()
	res := ackResult{Error: "timeout"}
	if cmd.differed != nil {
		res = ackResult{Error: "state differs", State: cmd.differed}
	}
	a.settleLocked(cmd, res, time.Now())
}

// failed reports a command that could not be published.
func (a *acks) failed(cmd *pendingCommand, reason string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.settleLocked(cmd, ackResult{Error: reason}, time.Now())
}

// drop forgets c's pending commands (c is leaving).
func (a *acks) drop(c *client) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perC[c] == 0 {
		return
	}
	for _, cmd := range a.byID {
		if cmd.c == c {
			cmd.timer.Stop()
			a.forgetLocked(cmd)
		}
	}
}

// stop stops every timer and takes no more commands (the hub is closing).
func (a *acks) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, cmd := range a.byID {
		cmd.timer.Stop()
		a.forgetLocked(cmd)
	}
	a.closed = true
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
