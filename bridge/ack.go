package bridge

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/devices"
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
//
// A command to a device of the model (clown.talk/-/command, POST
// /api/devices/{id}/command), and a raw publish on a command topic the
// model knows, are confirmed by the model's devices.Confirm instead (Tasmota
// cmnd/x/POWER by stat/x/POWER), and their acks carry a "code" besides the
// "error" in words.

// pendingCommand is a command waiting for its device.
type pendingCommand struct {
	id       string  // correlation data of the MQTT v5 request
	clientID string  // the client's own name for the command, if it gave one
	c        *client // whose limit it counts against: nil for the HTTP API's
	// done takes the result, once, under the acks' lock: it only queues
	// (the client's ack frame) or hands it over (an HTTP request waiting).
	done     func(ackResult)
	topic    string           // as the client sent it
	device   string           // the model's device and entity, for a command through the model
	entity   string           //
	state    string           // absolute topic of the device's state
	want     json.RawMessage  // the state asked for (when confirm is nil)
	confirm  *devices.Confirm // the model's confirmation: checked instead of want
	sent     time.Time
	timer    *time.Timer
	differed json.RawMessage // the last state reported that was not the one asked for
	// hideState keeps differed out of the ack: the sender may not read the
	// state topic (it may write a command topic and not read the state).
	hideState bool
}

// matches reports whether a message on the state topic (its frame's JSON
// value, and the MQTT payload) confirms cmd.
func (cmd *pendingCommand) matches(payload, raw []byte) bool {
	if cmd.confirm != nil {
		return cmd.confirm.Check(raw)
	}
	return stateMatches(cmd.want, payload)
}

// ackResult is the payload of clown.talk/-/ack.
type ackResult struct {
	Topic    string          `json:"topic"`
	ID       string          `json:"id,omitempty"`     // the client's name for the command
	Device   string          `json:"device,omitempty"` // a command through the model
	Entity   string          `json:"entity,omitempty"`
	OK       bool            `json:"ok"`
	MS       int64           `json:"ms"`
	Code     string          `json:"code,omitempty"`     // why it failed (CodeTimeout, CodeStateDiffers, CodeOffline, ...)
	Error    string          `json:"error,omitempty"`    // the same in words ("timeout", "state differs", ...)
	State    json.RawMessage `json:"state,omitempty"`    // what the device reported, when it differs
	Response json.RawMessage `json:"response,omitempty"` // an MQTT v5 response's payload
}

// failure is the result of a command that failed with err.
func failure(err error) ackResult {
	e := AsError(err)
	return ackResult{Code: e.Code, Error: e.Message}
}

// commandSuffix marks a publish as a command.
const commandSuffix = "/set"

// acks holds the pending commands, under its own lock (the fan-out takes it
// inside its own, never the reverse). It tells a client how its command
// ended through send, which only queues.
type acks struct {
	timeout       time.Duration
	max           int    // pending commands per client
	maxAPI        int    // pending commands of the HTTP API, together
	responseTopic string // where MQTT v5 devices answer
	send          func(c *client, frame []byte)
	stats         *counters

	waiting atomic.Int64 // len(byID), read without the lock by observe

	mu      sync.Mutex
	byState map[string][]*pendingCommand // absolute state topic → oldest first
	byID    map[string]*pendingCommand
	perC    map[*client]int // the HTTP API's under nil
	closed  bool
}

func newAcks(timeout time.Duration, max, maxAPI int, responseTopic string, send func(*client, []byte), stats *counters) *acks {
	return &acks{
		timeout: timeout, max: max, maxAPI: maxAPI, responseTopic: responseTopic, send: send, stats: stats,
		byState: make(map[string][]*pendingCommand), byID: make(map[string]*pendingCommand), perC: make(map[*client]int),
	}
}

// isCommand reports whether a publish to absTopic is a command: a topic
// ending in "/set", or one the model knows (known).
func isCommand(absTopic string, known bool) bool {
	state, ok := strings.CutSuffix(absTopic, commandSuffix)
	return known || ok && state != ""
}

// expectFrom makes the command of a publish from c to absTopic (in as c
// sent it), when c asked for acks and it is one: confirmed by confirm when
// known (the model knows the topic), else by the state on the topic without
// "/set". It is registered unless nothing confirms it (a zero confirm: see
// settleNow). mayRead says whether c may read a topic: a state it may not
// stays out of the ack. nil: no command.
func (a *acks) expectFrom(c *client, in Incoming, absTopic string, confirm devices.Confirm, known bool, mayRead func(topic string) bool) (*pendingCommand, error) {
	if !c.ack.Load() || !isCommand(absTopic, known) {
		return nil, nil
	}
	cmd := &pendingCommand{clientID: in.ID, c: c, done: a.toClient(c), topic: in.Topic}
	if known {
		cmd.confirm = &confirm
		cmd.state = confirm.Topic
		if confirm.Topic == "" {
			cmd.sent = time.Now()
			return cmd, nil
		}
	} else {
		var want bytes.Buffer
		_ = json.Compact(&want, in.Payload) // payload is valid JSON
		cmd.state, _ = strings.CutSuffix(absTopic, commandSuffix)
		cmd.want = want.Bytes()
	}
	cmd.hideState = !mayRead(cmd.state)
	if err := a.expect(cmd); err != nil {
		return nil, err
	}
	return cmd, nil
}

// toClient is the destination of c's acks: its queue.
func (a *acks) toClient(c *client) func(ackResult) {
	return func(res ackResult) { a.send(c, controlFrame(topicAck, res)) }
}

// expect registers cmd (its state, want or confirm, topic, client and
// destination set), within the limits: per client, or for the HTTP API.
func (a *acks) expect(cmd *pendingCommand) error {
	cmd.id, cmd.sent = newID(8), time.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return errorf(CodeUnavailable, "the hub is shutting down")
	}
	if limit := a.limitOf(cmd.c); a.perC[cmd.c] >= limit {
		return errorf(CodeLimit, "%d commands are waiting for their devices, at most %d per client", a.perC[cmd.c], limit)
	}
	c := cmd.c
	cmd.timer = time.AfterFunc(a.timeout, func() { a.timedOut(cmd) })
	a.byState[cmd.state] = append(a.byState[cmd.state], cmd)
	a.byID[cmd.id] = cmd
	a.perC[c]++
	a.waiting.Add(1)
	return nil
}

// limitOf is how many commands c may have waiting (nil: the HTTP API's).
func (a *acks) limitOf(c *client) int {
	if c == nil {
		return a.maxAPI
	}
	return a.max
}

// settleNow reports a command that nothing confirms (a zero Confirm: a
// button), or that failed before it was registered, without registering it.
func (a *acks) settleNow(cmd *pendingCommand, res ackResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.reportLocked(cmd, res, time.Now())
}

// observe looks at a delivered message for confirmations. The hub calls it
// for every message, after the fan-out (a client sees the state, then the
// ack): it costs an atomic load when nothing waits.
// payload is the frame's JSON value, raw the MQTT payload.
func (a *acks) observe(topic string, correlation, payload, raw []byte, now time.Time) {
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
		if cmd.matches(payload, raw) {
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
	a.reportLocked(cmd, res, now)
}

// reportLocked tells cmd's destination how it ended.
func (a *acks) reportLocked(cmd *pendingCommand, res ackResult, now time.Time) {
	res.Topic, res.ID, res.Device, res.Entity = cmd.topic, cmd.clientID, cmd.device, cmd.entity
	if cmd.sent.IsZero() {
		cmd.sent = now
	}
	res.MS = now.Sub(cmd.sent).Milliseconds()
	a.stats.acks(res)
	cmd.done(res)
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
	res := ackResult{Code: CodeTimeout, Error: "timeout"}
	if cmd.differed != nil {
		res = ackResult{Code: CodeStateDiffers, Error: "state differs"}
		if !cmd.hideState {
			res.State = cmd.differed
		}
	}
	a.settleLocked(cmd, res, time.Now())
}

// failed reports a command that could not be published.
func (a *acks) failed(cmd *pendingCommand, res ackResult) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cmd.timer == nil { // never registered (see settleNow)
		a.reportLocked(cmd, res, time.Now())
		return
	}
	a.settleLocked(cmd, res, time.Now())
}

// forget drops cmd without a word (its HTTP request is gone).
func (a *acks) forget(cmd *pendingCommand) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.byID[cmd.id] == cmd {
		cmd.timer.Stop()
		a.forgetLocked(cmd)
	}
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
	now := time.Now()
	for _, cmd := range a.byID {
		cmd.timer.Stop()
		a.forgetLocked(cmd)
		if cmd.c == nil { // an HTTP request waits for it
			a.reportLocked(cmd, failure(errorf(CodeUnavailable, "the hub is shutting down")), now)
		}
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
