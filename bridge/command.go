package bridge

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/topics"
)

// commandRequest is the payload of clown.talk/-/command, and the body of
// POST /api/devices/{id}/command (with the device in the path).
type commandRequest struct {
	Device string          `json:"device"`
	Entity string          `json:"entity"`
	Value  json.RawMessage `json:"value"`
	ID     string          `json:"id"` // the client's name for the command, echoed in its ack
}

// commandFrom handles ["clown.talk/-/command", {device, entity, value, id}]:
// the ack answers it, once, whatever the session's "ack" setting; only a
// payload that is no such object gets an error frame.
func (h *Hub) commandFrom(ctx context.Context, c *client, payload json.RawMessage) error {
	var req commandRequest
	if err := json.Unmarshal(payload, &req); err != nil || len(payload) == 0 || payload[0] != '{' {
		return errorf(CodeBadJSON, `command takes an object {"device", "entity", "value", "id"}`)
	}
	h.command(ctx, c.who, c.base, req, c, sourceWS, h.acks.toClient(c))
	return nil
}

// CommandResult is how a command through the device model ended.
type CommandResult struct {
	OK    bool            `json:"ok"`
	MS    int64           `json:"ms"`              // from the publish to the confirmation
	Topic string          `json:"topic,omitempty"` // the command topic
	Code  string          `json:"code,omitempty"`  // why it failed (CodeTimeout, CodeStateDiffers, CodeOffline, ...)
	Error string          `json:"error,omitempty"` // the same in words
	State json.RawMessage `json:"state,omitempty"` // what the device reported, when it differs
}

// Command sends value to entity of device deviceID for who, encoded as the
// device expects it, and waits for the device to confirm it (at most
// Config.AckTimeout) or for ctx to end. A command that failed has OK false
// and Code set; the error is ctx's.
func (h *Hub) Command(ctx context.Context, who auth.Identity, deviceID, entity string, value json.RawMessage) (CommandResult, error) {
	results := make(chan ackResult, 1) // done is called once
	cmd := h.command(ctx, who, "", commandRequest{Device: deviceID, Entity: entity, Value: value}, nil, sourceAPI,
		func(res ackResult) { results <- res })
	select {
	case res := <-results:
		return CommandResult{OK: res.OK, MS: res.MS, Topic: res.Topic, Code: res.Code, Error: res.Error, State: res.State}, nil
	case <-ctx.Done():
		if cmd != nil {
			h.acks.forget(cmd)
		}
		return CommandResult{}, ctx.Err()
	}
}

// command encodes req with the device model, checks that who (below base)
// may publish it, publishes it and registers it for confirmation; done gets
// the result once (at once when it fails before it is sent, or when
// nothing confirms it). It returns the registered command, if any. c is the
// session whose limit it counts against (nil: the HTTP API's).
func (h *Hub) command(ctx context.Context, who auth.Identity, base string, req commandRequest, c *client, src source, done func(ackResult)) *pendingCommand {
	cmd := &pendingCommand{clientID: req.ID, c: c, done: done, device: req.Device, entity: req.Entity, sent: time.Now()}
	fail := func(err error) *pendingCommand {
		h.acks.settleNow(cmd, failure(err))
		return nil
	}
	view, visible := h.deviceFor(who, base, req.Device)
	if !visible {
		return fail(&Error{Code: CodeUnknownDevice, Message: fmt.Sprintf("no device %q", req.Device)})
	}
	if !slices.ContainsFunc(view.Entities, func(e devices.Entity) bool { return e.ID == req.Entity }) {
		// One who sees it not: as if the device had none, in the same words.
		return fail(commandError(devices.ErrUnknownEntity))
	}
	encoded, err := h.devices.command(req.Device, req.Entity, req.Value)
	if err != nil {
		return fail(err)
	}
	rel, ok := topics.Unmount(base, encoded.Topic)
	if !ok { // the entity is read only here (viewOf): its topic is not told
		h.stats.forbidden.Add(1)
		return fail(errorf(CodeForbidden, "this entity is commanded outside this session's base"))
	}
	cmd.topic = rel
	abs, err := h.checkPublish(who, base, rel)
	if err != nil {
		return fail(err)
	}
	m := Message{Topic: abs, Payload: encoded.Payload, QoS: 1}
	registered := encoded.Confirm.Topic != ""
	if registered {
		cmd.confirm, cmd.state = &encoded.Confirm, encoded.Confirm.Topic
		cmd.hideState = !h.authz.Allowed(who, auth.Read, cmd.state)
		if err := h.acks.expect(cmd); err != nil {
			return fail(err)
		}
		m.ResponseTopic, m.CorrelationData = h.responseTopic, []byte(cmd.id)
	}
	if err := h.publish(ctx, m, rel, src); err != nil {
		h.acks.failed(cmd, failure(err))
		return nil
	}
	if !registered { // a button: done once published
		h.acks.settleNow(cmd, ackResult{OK: true})
		return nil
	}
	return cmd
}

// deviceFor returns the device as who, below base, sees it.
func (h *Hub) deviceFor(who auth.Identity, base, id string) (devices.Device, bool) {
	d, ok := h.devices.device(id)
	if !ok {
		return devices.Device{}, false
	}
	return viewOf(h.authz, who, base, d)
}
