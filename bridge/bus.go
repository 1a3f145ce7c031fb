package bridge

import "context"

// Message is one MQTT message as the hub sees it.
type Message struct {
	Topic string
	// Payload is read-only once handed to the hub or to a Bus: the hub keeps
	// and shares it without copying.
	Payload []byte
	QoS     byte
	Retain  bool
	// ResponseTopic and CorrelationData are MQTT v5's request/response
	// properties: the hub sets them on commands, and a v5 device that answers
	// on the response topic with the same correlation data confirms one.
	ResponseTopic   string
	CorrelationData []byte
	// Replay marks a retained message that the broker sends again because a
	// subscription was made (or made again, after a reconnect), not because
	// it was just published. The hub takes one equal to the value it has as
	// seen already. Retain alone cannot say it: the embedded broker hands on
	// the publisher's flag, and a device that repeats a retained reading
	// makes a new event each time.
	Replay bool
	// Delivery numbers an incoming message for a Bus that hands one message
	// to each of several overlapping subscriptions: each call gets the same
	// non-zero number, one after the other, and the hub takes the message
	// once. 0: not numbered.
	Delivery uint64
	// Position is where the message stands in an ordered, replayable log
	// that every hub on the same Bus shares (a JetStream stream's sequence):
	// a hub with Config.Positional numbers its event by it, so that its ids
	// mean the same on every replica. Positions increase from one message to
	// the next; they may skip. 0: none.
	Position uint64
}

// Bus is the MQTT side of the hub: the embedded broker or a remote one.
type Bus interface {
	// Publish sends m to the devices. It returns once the broker has taken the
	// message (for QoS 1, acknowledged it), or with an error when it could not.
	Publish(ctx context.Context, m Message) error
	// Subscribe calls fn for every message whose topic matches filter, once per
	// message, until cancel is called. fn must not block and may be called
	// from several goroutines at once. After cancel returns, fn is not called.
	Subscribe(filter string, fn func(Message)) (cancel func(), err error)
}
