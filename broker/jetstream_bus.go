package broker

import (
	"context"

	"github.com/motehub/motehub/bridge"
)

// FeedBus is the Bus of a hub that reads a JetStream stream and publishes
// through MQTT: Subscribe goes to the feed, Publish to the Remote (commands
// reach the devices over MQTT, QoS 1, as without the feed).
type FeedBus struct {
	Feed   *JetStreamFeed
	Remote *Remote
}

// Publish sends m through the Remote.
func (b FeedBus) Publish(ctx context.Context, m bridge.Message) error {
	return b.Remote.Publish(ctx, m)
}

// Subscribe follows filter on the feed.
func (b FeedBus) Subscribe(filter string, fn func(bridge.Message)) (func(), error) {
	return b.Feed.Subscribe(filter, fn)
}
