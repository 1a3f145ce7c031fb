package bridge

import (
	"context"
	"encoding/json"
	"slices"
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
	topicError         = controlPrefix + "error"
)

// sessionConfig is the payload of config/set. It sets the whole session
// configuration: a field left out takes its default, so {} means defaults.
// Unknown fields are ignored, for clients written against newer hubs.
type sessionConfig struct {
	Subscribe []string `json:"subscribe"` // nil: Config.DefaultFilters; []: nothing
	Ack       bool     `json:"ack"`
	IDs       bool     `json:"ids"`
	Batch     bool     `json:"batch"`
}

// configOK is the payload of config/ok: what the session now is.
type configOK struct {
	Ack       bool     `json:"ack"` // command acknowledgement is not offered yet
	Batch     bool     `json:"batch"`
	Device    string   `json:"device"`
	Epoch     string   `json:"epoch"`
	IDs       bool     `json:"ids"`
	Session   string   `json:"session"`
	Subscribe []string `json:"subscribe"`
}

// handleLine acts on one line a client sent and queues the answer, if any.
// Every problem is answered with an error frame; none ends the session.
func (h *Hub) handleLine(ctx context.Context, c *client, line []byte) {
	topic, payload, err := parseLine(line)
	if err == nil {
		err = h.dispatch(ctx, c, topic, payload)
	}
	if err != nil {
		e := AsError(err)
		if e.Topic == "" {
			e.Topic = topic
		}
		h.send(c, controlFrame(topicError, e))
	}
}

func (h *Hub) dispatch(ctx context.Context, c *client, topic string, payload json.RawMessage) error {
	switch topic {
	case topicConfigSet:
		return h.configure(c, payload)
	case topicSubscribe:
		filters, err := decodeFilters(payload)
		if err != nil {
			return err
		}
		if err := h.subscribe(c, filters); err != nil {
			return err
		}
		h.send(c, controlFrame(topicSubscribeOK, filters))
		return nil
	case topicUnsubscribe:
		filters, err := decodeFilters(payload)
		if err != nil {
			return err
		}
		h.unsubscribe(c, filters)
		h.send(c, controlFrame(topicUnsubscribeOK, filters))
		return nil
	case topicStateGet:
		return errorf(CodeUnsupported, "state/get is not offered by this hub yet")
	}
	return h.Publish(ctx, c.base, topic, payload)
}

func (h *Hub) configure(c *client, payload json.RawMessage) error {
	var sc sessionConfig
	if err := json.Unmarshal(payload, &sc); err != nil {
		return errorf(CodeBadJSON, "config/set takes an object {subscribe, ids, batch, ...}: %v", err)
	}
	if sc.Subscribe == nil {
		sc.Subscribe = h.cfg.DefaultFilters
	}
	h.mu.Lock()
	err := h.replaceFiltersLocked(c, sc.Subscribe)
	if err == nil {
		c.ids = sc.IDs
	}
	h.mu.Unlock()
	if err != nil {
		return err
	}
	c.batch.Store(sc.Batch)
	h.send(c, controlFrame(topicConfigOK, configOK{
		Batch:     sc.Batch,
		Device:    "hub",
		Epoch:     h.epoch,
		IDs:       sc.IDs,
		Session:   c.id,
		Subscribe: slices.Compact(slices.Sorted(slices.Values(sc.Subscribe))),
	}))
	return nil
}

func decodeFilters(payload json.RawMessage) ([]string, error) {
	var filters []string
	if err := json.Unmarshal(payload, &filters); err != nil {
		return nil, errorf(CodeBadJSON, "expected an array of topic filters: %v", err)
	}
	return filters, nil
}
