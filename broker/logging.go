package broker

import (
	"context"
	"fmt"
	"log/slog"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiLogger is the logger mochi gets. It quiets mochi's routine messages
// (hook added, listener attached, server started: the hub's to announce) to
// warnings unless log is enabled for debug, and it never lets a packet or a
// Will through whole: mochi logs whole packets on errors (a second CONNECT
// with its password, a refused PUBLISH with its payload), so each is replaced
// by a summary without credentials or payload, at every level.
func mochiLogger(log *slog.Logger) *slog.Logger {
	h := log.With("component", "mochi").Handler()
	minLevel := slog.LevelDebug
	if !log.Enabled(context.Background(), slog.LevelDebug) {
		minLevel = slog.LevelWarn
	}
	return slog.New(redacting{Handler: h, min: minLevel})
}

// redacting passes records of at least min on, with packets summarised.
type redacting struct {
	slog.Handler
	min slog.Level
}

func (h redacting) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h redacting) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redact(a))
		return true
	})
	return h.Handler.Handle(ctx, out)
}

func (h redacting) WithAttrs(as []slog.Attr) slog.Handler {
	redacted := make([]slog.Attr, len(as))
	for i, a := range as {
		redacted[i] = redact(a)
	}
	return redacting{Handler: h.Handler.WithAttrs(redacted), min: h.min}
}

func (h redacting) WithGroup(name string) slog.Handler {
	return redacting{Handler: h.Handler.WithGroup(name), min: h.min}
}

// redact replaces what may carry a credential or a payload with a summary.
func redact(a slog.Attr) slog.Attr {
	switch v := a.Value.Resolve(); v.Kind() {
	case slog.KindGroup:
		group := v.Group()
		redacted := make([]any, len(group))
		for i, g := range group {
			redacted[i] = redact(g)
		}
		return slog.Group(a.Key, redacted...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case packets.Packet:
			return slog.String(a.Key, summary(&x))
		case *packets.Packet:
			return slog.String(a.Key, summary(x))
		case mqtt.Will:
			return slog.String(a.Key, fmt.Sprintf("will to %q, %d bytes", x.TopicName, len(x.Payload)))
		case *mqtt.Will:
			return slog.String(a.Key, fmt.Sprintf("will to %q, %d bytes", x.TopicName, len(x.Payload)))
		case []byte:
			return slog.String(a.Key, fmt.Sprintf("%d bytes", len(x)))
		case fmt.Stringer, error:
			return a
		default:
			// Anything else mochi might pass (a struct holding a packet, say):
			// its type, never its contents.
			return slog.String(a.Key, fmt.Sprintf("%T", x))
		}
	}
	return a
}

// summary names a packet without its credentials or payload.
func summary(pk *packets.Packet) string {
	name := packets.PacketNames[pk.FixedHeader.Type]
	switch pk.FixedHeader.Type {
	case packets.Publish:
		return fmt.Sprintf("%s to %q (qos %d, retain %t, id %d, %d bytes)", name, pk.TopicName,
			pk.FixedHeader.Qos, pk.FixedHeader.Retain, pk.PacketID, len(pk.Payload))
	case packets.Connect:
		return fmt.Sprintf("%s from %q (protocol %d)", name, pk.Connect.ClientIdentifier, pk.ProtocolVersion)
	default:
		return fmt.Sprintf("%s (id %d)", name, pk.PacketID)
	}
}
