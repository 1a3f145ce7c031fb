package broker

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/topics"
)

// What the admin view reads of the embedded broker, and what it does: its
// connected clients (a disconnect) and its retained messages. Clearing a
// retained message is a publish (an empty retained message, through
// bridge.Hub.PublishRetained), so that the store, the hub's last values and
// every subscriber learn of it as of any other.

// transportNames name the listeners' transports for people.
var transportNames = map[string]string{"mqtt": "tcp", "mqtts": "tls", wsListenerID: "ws"}

// Clients returns at most limit of the MQTT clients connected now, from
// offset on, in the order they connected, and how many there are.
// Disconnected sessions the broker keeps are not listed.
func (e *Embedded) Clients(offset, limit int) (page []bridge.MQTTClient, total int) {
	var clients []*mqtt.Client
	for _, cl := range e.server.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			clients = append(clients, cl)
		}
	}
	slices.SortFunc(clients, func(a, b *mqtt.Client) int {
		return cmp.Or(connectedSince(a).Compare(connectedSince(b)), cmp.Compare(a.ID, b.ID))
	})
	total = len(clients)
	offset = min(max(offset, 0), total)
	clients = clients[offset:min(offset+max(limit, 0), total)]
	page = make([]bridge.MQTTClient, 0, len(clients))
	for _, cl := range clients {
		page = append(page, clientInfo(cl))
	}
	return page, total
}

// DisconnectClient ends the connection of the client id for an
// administrative action: an MQTT 5 client gets DISCONNECT with reason 0x98
// first (MQTT 3.1.1 has no DISCONNECT from the server: the connection just
// closes). Its Will, if it has one, is published, as MQTT says of every
// connection that ends without the client's own DISCONNECT: whoever watches
// the Will's topic learns that the client is gone, which it is. Its session
// stays as the client asked (clean or not), and the client may connect
// again. It reports false when no such client is connected.
func (e *Embedded) DisconnectClient(id string) (bridge.MQTTClient, bool) {
	cl, ok := e.server.Clients.Get(id)
	if !ok || cl.Net.Inline || cl.Closed() {
		return bridge.MQTTClient{}, false
	}
	info := clientInfo(cl)
	if cl.Properties.ProtocolVersion == 5 {
		_ = e.server.DisconnectClient(cl, packets.ErrAdministrativeAction) // its error is the code
	} else {
		cl.Stop(packets.ErrAdministrativeAction)
	}
	return info, true
}

// connectedSince is when cl's CONNECT was read (zero for a client restored
// from the store, which has no connection).
func connectedSince(cl *mqtt.Client) time.Time {
	if c, ok := cl.Net.Conn.(interface{ connectedSince() time.Time }); ok {
		return c.connectedSince()
	}
	return time.Time{}
}

// clientInfo describes cl for the admin view.
func clientInfo(cl *mqtt.Client) bridge.MQTTClient {
	info := bridge.MQTTClient{
		ID:              cl.ID,
		User:            string(identityOf(cl)),
		Remote:          cl.Net.Remote,
		Transport:       cmp.Or(transportNames[cl.Net.Listener], cl.Net.Listener),
		Since:           connectedSince(cl),
		ProtocolVersion: int(cl.Properties.ProtocolVersion),
		Clean:           cl.Properties.Clean,
		Queued:          cl.PendingWrites(),
		Inflight:        cl.State.Inflight.Len(),
	}
	subs := cl.State.Subscriptions.GetAll()
	info.SubscriptionCount = len(subs)
	info.Subscriptions = make([]string, 0, len(subs))
	for filter := range subs {
		info.Subscriptions = append(info.Subscriptions, filter)
	}
	slices.Sort(info.Subscriptions)
	if len(info.Subscriptions) > bridge.MaxListedFilters {
		info.Subscriptions = info.Subscriptions[:bridge.MaxListedFilters]
	}
	return info
}

// Retained returns the retained messages whose topics match filter, sorted
// by topic. MQTT's matching rules apply: "#" does not match "$SYS/...".
func (e *Embedded) Retained(filter string) ([]bridge.RetainedMessage, error) {
	if err := topics.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("invalid filter %q: %w", filter, err)
	}
	var out []bridge.RetainedMessage
	for _, pk := range e.server.Topics.Messages(filter) {
		if len(pk.Payload) == 0 || !topics.Match(filter, pk.TopicName) {
			continue
		}
		m := bridge.RetainedMessage{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Origin: pk.Origin}
		if pk.Created != 0 {
			m.Created = time.Unix(pk.Created, 0)
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b bridge.RetainedMessage) int { return cmp.Compare(a.Topic, b.Topic) })
	return out, nil
}
