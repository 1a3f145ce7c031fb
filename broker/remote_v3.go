package broker

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/motehub/motehub/bridge"
)

// v3Link is a connection in MQTT 3.1.1, through paho.mqtt.golang. paho
// writes the packets of every call in the order of the calls (its outbound
// queue), so subscribe and unsubscribe need no queue of their own.
type v3Link struct {
	client paho.Client
}

// connectV3 connects cn in MQTT 3.1.1 with a clean session. It returns
// ErrClosed when Close ended the attempt.
func (r *Remote) connectV3(cn *conn) (link, error) {
	opts := paho.NewClientOptions().
		AddBroker(cn.node.url.String()).
		SetClientID(r.clientID).
		SetUsername(cn.node.user).
		SetPassword(cn.node.password).
		SetProtocolVersion(4). // explicit: else paho retries a refused CONNECT as MQTT 3.1
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(r.cfg.ConnectTimeout).
		SetWriteTimeout(r.cfg.PublishTimeout).
		SetKeepAlive(r.cfg.KeepAlive).
		SetPingTimeout(min(maxPingTimeout, r.cfg.KeepAlive)).
		// Ordered: the router calls dispatch for one message after the
		// other, keeping each topic's order; dispatch never blocks. Unordered,
		// paho would start a goroutine per message.
		SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ paho.Client, pm paho.Message) {
			// A broker sets RETAIN only on what it sends for a new
			// subscription (MQTT-3.3.1-8, -9): a replay.
			r.dispatch(bridge.Message{Topic: pm.Topic(), Payload: pm.Payload(), QoS: pm.Qos(), Retain: pm.Retained(), Replay: pm.Retained()})
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) { cn.setLost(err) }).
		SetCustomOpenConnectionFn(func(u *url.URL, _ paho.ClientOptions) (net.Conn, error) {
			return r.dial(cn, u)
		})
	l := &v3Link{client: paho.NewClient(opts)}
	tok := l.client.Connect()
	select {
	case <-tok.Done():
	case <-r.quit:
		cn.cancelDial()
		cn.mu.Lock()
		if cn.netConn != nil {
			_ = cn.netConn.Close() // ends the wait for CONNACK
		}
		cn.mu.Unlock()
		<-tok.Done() // soon: the dial was cancelled, the handshake cut
		if tok.Error() == nil {
			l.disconnect(time.Until(*r.closeDeadline.Load()))
		}
		return nil, ErrClosed
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("%w: connecting to %s: %v", ErrUnavailable, cn.node, connectError(err))
	}
	return l, nil
}

func (l *v3Link) publish(ctx context.Context, m bridge.Message) error {
	// MQTT 3.1.1 has no properties: ResponseTopic and CorrelationData stay
	// behind.
	tok := l.client.Publish(m.Topic, m.QoS, m.Retain, m.Payload)
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (l *v3Link) subscribe(filters []string) pendingSub {
	batch := make(map[string]byte, len(filters))
	for _, f := range filters {
		batch[f] = 1
	}
	// nil: every message goes to the default handler, dispatch.
	return v3Sub{l.client.SubscribeMultiple(batch, nil).(*paho.SubscribeToken)}
}

func (l *v3Link) unsubscribe(filter string) { l.client.Unsubscribe(filter) }

func (l *v3Link) disconnect(quiesce time.Duration) {
	// Disconnect returns as soon as paho's goroutines have ended, or when
	// quiesce has passed.
	l.client.Disconnect(uint(max(quiesce, time.Millisecond) / time.Millisecond))
}

// v3Sub is a SUBSCRIBE sent through paho.mqtt.golang.
type v3Sub struct{ tok *paho.SubscribeToken }

func (s v3Sub) done() <-chan struct{} { return s.tok.Done() }

func (s v3Sub) result() (granted int, refused []string, err error) {
	if err := s.tok.Error(); err != nil {
		return 0, nil, err
	}
	for f, code := range s.tok.Result() {
		if code >= 0x80 {
			refused = append(refused, f)
		} else {
			granted++
		}
	}
	return granted, refused, nil
}
