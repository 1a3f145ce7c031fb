package bridge

import (
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/devices"
)

// Control topics: a Clown.Talk client talks to the hub itself on topics under
// "clown.talk/-/"; every other topic is a publish to the devices.
const (
	controlPrefix      = "clown.talk/-/"
	topicConfigSet     = controlPrefix + "config/set"
	topicConfigOK      = controlPrefix + "config/ok"
	topicSubscribe     = controlPrefix + "subscribe"
	topicSubscribeOK   = controlPrefix + "subscribe/ok"
	topicUnsubscribe   = controlPrefix + "unsubscribe"
	topicUnsubscribeOK = controlPrefix + "unsubscribe/ok"
	topicStateGet      = controlPrefix + "state/get"
	topicStateOK       = controlPrefix + "state/ok"
	topicResync        = controlPrefix + "resync"
	topicError         = controlPrefix + "error"
	topicAck           = controlPrefix + "ack"
)

// sessionConfig is the payload of config/set. It sets the whole session
// configuration: a field left out takes its default, so {} means defaults.
// Unknown fields are ignored, for clients written against newer hubs.
type sessionConfig struct {
	Subscribe []string `json:"subscribe"` // nil: Config.DefaultFilters; []: nothing
	Since     *string  `json:"since"`     // an event id the client has: resume after it
	Ack       bool     `json:"ack"`
	IDs       bool     `json:"ids"`
	Batch     bool     `json:"batch"`
	Text      bool     `json:"text"`     // plain-text payloads as {"$text": "..."}
	Devices   bool     `json:"devices"`  // live clown.talk/-/device frames
	Overflow  string   `json:"overflow"` // when the queue is full: OverflowClose ("" too) or OverflowLatest (latest.go)
}

// configOK is the payload of config/ok: what the session now is, and who
// it acts as with what rights (UserRights: "user", "open", "admin",
// "rules"), read when the session is configured; a reload of the users
// file takes effect at once but shows in the next config/ok.
type configOK struct {
	UserRights
	Ack   bool `json:"ack"` // commands are confirmed with clown.talk/-/ack
	Batch bool `json:"batch"`
	// Boot names this run of the hub: another after a reconnect says the
	// hub restarted (and nobody recorded what devices sent meanwhile), what
	// a resumed epoch cannot say after a clean restart.
	Boot      string   `json:"boot"`
	Device    string   `json:"device"`
	Devices   bool     `json:"devices"` // live device frames (clown.talk/-/device)
	Epoch     string   `json:"epoch"`
	ID        string   `json:"id"` // the stream goes on after this event: resume from it
	IDs       bool     `json:"ids"`
	Session   string   `json:"session"`
	Subscribe []string `json:"subscribe"`
	Text      bool     `json:"text"` // plain-text payloads are {"$text": "..."}
	Overflow  string   `json:"overflow"`
}

// handleLine acts on one line a client sent and queues the answer, if any.
// Every problem is answered with an error frame; none ends the session.
func (h *Hub) handleLine(ctx context.Context, c *client, line []byte) {
	in, err := ParseMessage(line)
	if err == nil {
		if in.Topic != topicConfigSet {
			h.fan.startDefault(c) // a client that talks before configuring gets the defaults
		}
		err = h.dispatch(ctx, c, in)
	}
	if err != nil {
		e := AsError(err)
		if e.Topic == "" {
			e.Topic = in.Topic
		}
		h.fan.send(c, controlFrame(topicError, e))
	}
}

func (h *Hub) dispatch(ctx context.Context, c *client, in Incoming) error {
	topic, payload := in.Topic, in.Payload
	switch topic {
	case topicConfigSet:
		return h.configure(ctx, c, payload)
	case topicSubscribe:
		filters, err := decodeFilters(payload)
		if err != nil {
			return err
		}
		if err := h.subscribe(ctx, c, filters); err != nil {
			return err
		}
		h.fan.send(c, controlFrame(topicSubscribeOK, filters))
		return nil
	case topicUnsubscribe:
		filters, err := decodeFilters(payload)
		if err != nil {
			return err
		}
		h.fan.unsubscribe(c, filters)
		h.fan.send(c, controlFrame(topicUnsubscribeOK, filters))
		return nil
	case topicStateGet:
		return h.stateGet(ctx, c, payload)
	case topicDevicesGet:
		h.devicesGet(c)
		return nil
	case topicCommand:
		return h.commandFrom(ctx, c, payload)
	}
	return h.publishFrom(ctx, c, in)
}

// publishFrom publishes for a session, as a command to be acknowledged when
// the client asked for that: then every command gets exactly one ack,
// also when it is refused (besides the error frame every refusal gets). A
// command is a publish on a topic ending in "/set", or on a command topic
// the device model knows, which then says what confirms it.
func (h *Hub) publishFrom(ctx context.Context, c *client, in Incoming) error {
	var confirm devices.Confirm
	known := false
	refused := func(err error) error {
		if c.ack.Load() && (known || strings.HasSuffix(in.Topic, commandSuffix)) {
			e := AsError(err)
			h.fan.send(c, controlFrame(topicAck, ackResult{Topic: in.Topic, ID: in.ID, Code: e.Code, Error: e.Code}))
		}
		return err
	}
	m, err := h.prepareMessage(c.who, c.base, in.Topic, in.Payload)
	if err != nil {
		return refused(err)
	}
	if c.ack.Load() {
		confirm, known = h.devices.confirmFor(m.Topic, m.Payload)
	}
	cmd, err := h.acks.expectFrom(c, in, m.Topic, confirm, known,
		func(topic string) bool { return h.authz.Allowed(c.who, auth.Read, topic) })
	if err != nil {
		return refused(err)
	}
	if cmd != nil {
		m.ResponseTopic, m.CorrelationData = h.responseTopic, []byte(cmd.id)
	}
	if err := h.publish(ctx, m, in.Topic, sourceWS); err != nil {
		if cmd != nil {
			h.acks.failed(cmd, ackResult{Code: CodeUnavailable, Error: CodeUnavailable})
		}
		return err
	}
	if cmd != nil && cmd.timer == nil { // nothing confirms it: done once published
		h.acks.settleNow(cmd, ackResult{OK: true})
	}
	return nil
}

// configure applies config/set. The first one starts the session: from the
// event named by since, or else from where the client connected, so nothing
// published before it is lost. A later one with since starts the stream
// again from there (lines may repeat; ids tell them apart); without since it
// changes the filters from now on.
func (h *Hub) configure(ctx context.Context, c *client, payload json.RawMessage) error {
	var sc sessionConfig
	if err := json.Unmarshal(payload, &sc); err != nil {
		return errorf(CodeBadJSON, "config/set takes an object {subscribe, since, ids, batch, ...}: %v", err)
	}
	if sc.Subscribe == nil {
		sc.Subscribe = h.cfg.DefaultFilters
	}
	if err := checkFilters(c.base, sc.Subscribe); err != nil {
		return err
	}
	if err := checkOverflow(sc.Overflow); err != nil {
		return err
	}
	if sc.Overflow == "" {
		sc.Overflow = OverflowClose
	}
	if _, err := authorize(h.authz, &h.stats, c.who, c.base, sc.Subscribe); err != nil {
		return err
	}
	h.interest.follow(ctx, c.base, sc.Subscribe, interestWait)
	ok := configOK{
		UserRights: RightsOf(h.authz, c.who),
		Ack:        sc.Ack,
		Batch:      sc.Batch,
		Boot:       h.boot,
		Device:     "hub",
		Epoch:      h.epoch,
		IDs:        sc.IDs,
		Session:    c.id,
		Subscribe:  slices.Compact(slices.Sorted(slices.Values(sc.Subscribe))),
		Text:       sc.Text,
		Devices:    sc.Devices,
		Overflow:   sc.Overflow,
	}

	if err := h.fan.configure(c, sc, ok); err != nil {
		return err
	}
	h.views.follow(c, sc.Devices)
	return nil
}

// stateGet answers ["clown.talk/-/state/get", {"filter": "#" or [...]}] with
// the last values in a state/ok frame, queued exactly where the live stream
// is, so no older message follows it. Without a filter: the session's own.
// The values are read outside every lock (see Hub.sendStateAt).
func (h *Hub) stateGet(ctx context.Context, c *client, payload json.RawMessage) error {
	var req struct {
		Filter json.RawMessage `json:"filter"`
	}
	if err := json.Unmarshal(payload, &req); err != nil {
		return errorf(CodeBadJSON, `state/get takes an object {"filter": "..." or [...]}: %v`, err)
	}
	var filters []string
	if len(req.Filter) > 0 && string(req.Filter) != "null" {
		var one string
		if json.Unmarshal(req.Filter, &one) == nil {
			filters = []string{one}
		} else if err := json.Unmarshal(req.Filter, &filters); err != nil {
			return errorf(CodeBadJSON, `"filter" must be a topic filter or an array of them`)
		}
		if err := h.checkQuery(c.base, filters); err != nil {
			return err
		}
		if _, err := authorize(h.authz, &h.stats, c.who, c.base, filters); err != nil {
			return err
		}
		h.interest.follow(ctx, c.base, filters, interestWait)
	} else {
		filters = h.fan.filtersOf(c)
	}
	return h.sendStateAt(c, filters)
}

func decodeFilters(payload json.RawMessage) ([]string, error) {
	var filters []string
	if err := json.Unmarshal(payload, &filters); err != nil {
		return nil, errorf(CodeBadJSON, "expected an array of topic filters: %v", err)
	}
	return filters, nil
}
