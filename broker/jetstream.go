package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/topics"
)

// JetStreamConfig configures a [JetStreamFeed].
type JetStreamConfig struct {
	// URLs are NATS servers of the cluster (nats:// or tls://, port 4222 by
	// default), credentials allowed in them. Required.
	URLs []string
	// Stream is the JetStream stream to read: it captures the subjects of
	// the devices' MQTT topics. Required.
	Stream string
	// Username and Password, when Username is set, win over the URLs'.
	Username, Password string
	// StartTimeout bounds OpenJetStream: connecting and reading the
	// stream's configuration. Default 10 s.
	StartTimeout time.Duration
	// OnFloor is called, before the next message, when the feed cannot
	// vouch for the messages up to floor: by Start (the feed begins with the
	// last message of each subject up to the stream's last sequence, not
	// every message; again by the supervisor if the first consumer is lost
	// before it brought a message), and, on the goroutine that delivers, after a hole (hole true: messages left the stream before the feed
	// read them). It must not call Subscribe or a cancel function. Default:
	// none.
	OnFloor func(floor uint64, hole bool)
	// Logger receives the feed's logs. Default: slog.Default().
	Logger *slog.Logger
}

// DefaultJetStreamStartTimeout is JetStreamConfig.StartTimeout's default.
const DefaultJetStreamStartTimeout = 10 * time.Second

// ErrStreamUnfit is returned, wrapped, by [OpenJetStream] for a stream whose
// configuration could delete messages in its middle (per-subject limits,
// work-queue or interest retention, per-message TTLs): a feed could not
// tell those deletes from a hole, and would resync without end.
var ErrStreamUnfit = errors.New("stream unfit for resuming")

// ErrStreamReplaced says that the stream the feed reads was deleted or
// created again: its positions are not the ones the feed's epoch names.
var ErrStreamReplaced = errors.New("the stream was deleted or created again: restart the hub to follow the new one")

// JetStreamFeed reads every message of one JetStream stream, in stream
// order, with its stream sequence as bridge.Message.Position: the receiving
// side of a Bus for hubs that resume each other's clients (see
// docs/scaling.md, "Resume across replicas"). It starts with the last
// message of each subject (marked Replay), then every new message. The
// subjects are mapped to MQTT topics as NATS's MQTT gateway maps them.
//
// Positions after the start follow one another: a jump is a hole (the
// consumer was away while messages left the stream), reported to
// JetStreamConfig.OnFloor before the message after it.
//
// # Concurrency contract
//
//   - Messages are delivered by one goroutine of nats.go's at a time, in
//     stream order; the callbacks run under the feed's dispatch lock, which
//     Subscribe and cancel take, so that once cancel returns its callback
//     is not called. A callback must not block, nor call Subscribe or
//     cancel.
//   - Subscribe hands a callback the messages from the next one on: it
//     does not replay the current values of its filter. A hub on a feed
//     subscribes once, to everything, before Start (see cmd/hub).
//   - All exported methods are safe for concurrent use; Close is safe to
//     call more than once.
type JetStreamFeed struct {
	cfg    JetStreamConfig
	log    *slog.Logger
	nc     *nats.Conn
	js     jetstream.JetStream
	epoch  string
	origin string // the stream's creation time, as its epoch says it

	mu sync.Mutex // the dispatch lock: the index, and the delivery state below
	// snapshotEnd is the stream's last sequence when the feed's first
	// consumer was made (see snapshotTo): up to it, the feed brings the
	// last message of each subject.
	snapshotEnd uint64
	index       topics.Index[*feedSub]
	last        uint64 // the position of the last message read; 0: none yet
	// The consumer messages are taken from (the others' are dropped), and
	// the consumer sequence of the last one: a jump means messages were lost
	// on the way, and the consumer is made again after the last position.
	consumer    string
	consumerSeq uint64
	consume     jetstream.ConsumeContext // the current consumer's; nil while none

	position atomic.Uint64
	holes    atomic.Uint64
	remakes  atomic.Uint64
	failed   atomic.Pointer[error] // set for good: the stream was replaced
	stalled  atomic.Pointer[error] // set while the feed cannot make its consumer
	netUp    atomic.Bool

	remake chan string   // a consumer to replace (its name), for the supervisor (capacity 1)
	quit   chan struct{} // closed by Close
	// quitCtx ends with Close, and with it the feed's waits for the server.
	quitCtx    context.Context
	cancelQuit context.CancelFunc
	done       chan struct{} // closed when the supervisor returns
	started    atomic.Bool
	stopOnce   sync.Once
}

type feedSub struct{ fn func(bridge.Message) }

// OpenJetStream connects to the NATS cluster and reads the stream's
// configuration, which must keep messages without deleting any in its
// middle ([ErrStreamUnfit]). The feed reads nothing until Start.
func OpenJetStream(ctx context.Context, cfg JetStreamConfig) (*JetStreamFeed, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = DefaultJetStreamStartTimeout
	}
	if len(cfg.URLs) == 0 || cfg.Stream == "" {
		return nil, errors.New("a JetStream feed needs NATS URLs and a stream")
	}
	for _, u := range cfg.URLs {
		if err := checkNATSURL(u); err != nil {
			return nil, err
		}
	}
	f := &JetStreamFeed{cfg: cfg, log: cfg.Logger, remake: make(chan string, 1), quit: make(chan struct{}), done: make(chan struct{})}
	f.quitCtx, f.cancelQuit = context.WithCancel(context.Background())
	opts := []nats.Option{
		nats.Name("motehub"),
		nats.MaxReconnects(-1),
		nats.Timeout(cfg.StartTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) { f.setNetUp(false, err) }),
		nats.ReconnectHandler(func(*nats.Conn) { f.setNetUp(true, nil) }),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			f.log.Debug("NATS error", "err", err)
		}),
	}
	if cfg.Username != "" {
		opts = append(opts, nats.UserInfo(cfg.Username, cfg.Password))
	}
	nc, err := nats.Connect(strings.Join(cfg.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS %s: %w", redactNATS(cfg.URLs), err)
	}
	f.nc = nc
	f.netUp.Store(true)
	if f.js, err = jetstream.New(nc); err != nil {
		nc.Close()
		return nil, fmt.Errorf("JetStream: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.StartTimeout)
	defer cancel()
	info, err := f.streamInfo(ctx)
	if err != nil {
		nc.Close()
		return nil, err
	}
	if err := checkStream(&info.Config); err != nil {
		nc.Close()
		return nil, err
	}
	f.origin = strconv.FormatInt(info.Created.UnixNano(), 36)
	f.epoch = streamEpoch(cfg.Stream, f.origin)
	f.snapshotEnd = info.State.LastSeq
	return f, nil
}

// streamEpoch is the epoch of the stream name created at origin: the name
// as it is when it is short printable ASCII without '%', quotes or
// backslashes (an epoch must survive an SSE id line, a JSON string and a
// URL query: bridge.Config.Epoch), else escaped, and a long one cut with
// a hash of the whole: NATS allows any name of up to 255 bytes without
// spaces, '.', '*', '>' or path separators.
func streamEpoch(stream, origin string) string {
	name := stream
	if strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r > '~' || r == '"' || r == '\\' || r == '%' }) {
		name = url.PathEscape(name) // escapes '%', '"' and '\' too
	}
	if len(name) > maxEpochName {
		sum := sha256.Sum256([]byte(stream))
		name = name[:maxEpochName-17] + "_" + hex.EncodeToString(sum[:8])
	}
	return name + "." + origin
}

// maxEpochName bounds the stream's part of the epoch (the epoch's bound is
// 128 bytes; the origin takes at most 14).
const maxEpochName = 100

// streamInfo reads the stream's configuration and state.
func (f *JetStreamFeed) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	s, err := f.js.Stream(ctx, f.cfg.Stream)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", f.cfg.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", f.cfg.Stream, err)
	}
	return info, nil
}

// checkStream refuses a stream that deletes messages in its middle.
func checkStream(c *jetstream.StreamConfig) error {
	switch {
	case c.MaxMsgsPerSubject > 0:
		return fmt.Errorf("%w: stream %s keeps at most %d messages per subject (max_msgs_per_subject): each new message deletes one in the middle of the stream; use a stream without per-subject limits (MaxMsgs, MaxBytes and MaxAge are fine)", ErrStreamUnfit, c.Name, c.MaxMsgsPerSubject)
	case c.Retention != jetstream.LimitsPolicy:
		return fmt.Errorf("%w: stream %s has %s retention: acknowledged messages leave it from the middle; use limits retention", ErrStreamUnfit, c.Name, c.Retention)
	case c.AllowMsgTTL:
		return fmt.Errorf("%w: stream %s allows per-message TTLs, which delete messages in its middle", ErrStreamUnfit, c.Name)
	}
	return nil
}

// Epoch names the stream the feed reads: its name and creation time, the
// same for every replica, and different for a stream created again.
func (f *JetStreamFeed) Epoch() string { return f.epoch }

// Start begins reading: the last message of each subject up to the
// stream's last sequence, then every new one. Call it once, after the
// subscriptions that must see everything are made.
//
// The feed reads through a consumer of its own (ephemeral, in memory, no
// acknowledgements), which its supervisor goroutine makes again, from the
// position after the last message, whenever it is lost (its node died),
// stops sending (no heartbeat), or lost messages on the way (a jump in its
// own sequence), or when messages wait in the stream and none came for a
// whole check (stallCheck). nats.go's OrderedConsumer does the same but
// keeps retrying one consumer name under its lock, forever, when the
// cluster placed that consumer on a node that died: its Stop then blocks.
func (f *JetStreamFeed) Start(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return errors.New("the feed is already started")
	}
	ctx, cancel := context.WithTimeout(ctx, f.cfg.StartTimeout)
	defer cancel()
	if err := f.makeConsumer(ctx); err != nil { // tells OnFloor the snapshot's end, before any message
		close(f.done) // no supervisor
		return err
	}
	f.mu.Lock()
	end := f.snapshotEnd
	f.mu.Unlock()
	f.log.Info("reading the JetStream stream", "stream", f.cfg.Stream, "epoch", f.epoch, "snapshot_to", end)
	go f.supervise() // until Close
	return nil
}

// stallCheck is how often the supervisor checks that the feed moves while
// messages wait in the stream. A variable for the tests.
var stallCheck = 5 * time.Second

// makeConsumer replaces the feed's consumer (if any) with a new one that
// starts after the last position read (at the start, with the last message
// of each subject, up to the stream's end when the consumer is made: see
// snapshotTo).
func (f *JetStreamFeed) makeConsumer(ctx context.Context) error {
	f.mu.Lock()
	old, from := f.consume, f.last+1
	f.consume, f.consumer = nil, ""
	f.mu.Unlock()
	if old != nil {
		old.Stop() // a pull subscription's Stop does not wait
	}
	cfg := jetstream.ConsumerConfig{
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       from,
		AckPolicy:         jetstream.AckNonePolicy,
		InactiveThreshold: time.Minute, // the server deletes one left behind (its node died)
		Replicas:          1,
		MemoryStorage:     true,
	}
	if from == 1 {
		cfg.DeliverPolicy, cfg.OptStartSeq, cfg.FilterSubjects = jetstream.DeliverLastPerSubjectPolicy, 0, []string{">"}
	}
	cons, err := f.js.CreateConsumer(ctx, f.cfg.Stream, cfg)
	if err != nil {
		return fmt.Errorf("stream %s: consumer: %w", f.cfg.Stream, err)
	}
	name := cons.CachedInfo().Name
	if from == 1 {
		if err := f.snapshotTo(ctx); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.consumer, f.consumerSeq = name, 0
	cc, err := cons.Consume(f.receive, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		f.consumeError(name, err)
	}))
	if err != nil {
		f.consumer = ""
		return fmt.Errorf("stream %s: consume: %w", f.cfg.Stream, err)
	}
	f.consume = cc
	return nil
}

// snapshotTo sets the snapshot's end once a consumer that begins with the
// last message of each subject is made, and before it brings any: the
// server's snapshot reaches the stream's last sequence when it made the
// consumer, not when OpenJetStream read it, so the messages published
// between them come as the last of their subjects too, not one by one. The
// stream's last sequence read now is at or past the server's end: every
// message after it comes, and a jump there is a hole. OnFloor is told
// before the first message: no client resumes from before the snapshot's
// end. A stream replaced since OpenJetStream fails the feed for good.
func (f *JetStreamFeed) snapshotTo(ctx context.Context) error {
	info, err := f.streamInfo(ctx)
	if err != nil {
		return err
	}
	if strconv.FormatInt(info.Created.UnixNano(), 36) != f.origin {
		f.fail()
		return *f.failed.Load()
	}
	f.mu.Lock()
	f.snapshotEnd = max(f.snapshotEnd, info.State.LastSeq)
	end := f.snapshotEnd
	f.mu.Unlock()
	f.onFloor(end, false)
	return nil
}

// consumeError is the consumer's error handler: the errors after which it
// brings nothing more have the supervisor make it again.
func (f *JetStreamFeed) consumeError(name string, err error) {
	f.log.Debug("JetStream consumer", "stream", f.cfg.Stream, "consumer", name, "err", err)
	if errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrConsumerDeleted) ||
		errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, nats.ErrNoResponders) {
		f.askRemake(name)
	}
}

// askRemake asks the supervisor to replace consumer name.
func (f *JetStreamFeed) askRemake(name string) {
	select {
	case f.remake <- name:
	default: // one is asked already
	}
}

// supervise makes the consumer again when asked, or when the feed stalls,
// until Close. Each attempt waits for the server at most StartTimeout;
// attempts are spaced from 250 ms to 5 s.
func (f *JetStreamFeed) supervise() {
	defer close(f.done)
	tick := time.NewTicker(stallCheck)
	defer tick.Stop()
	var seen uint64 // the position at the last check
	for {
		select {
		case <-f.quit:
			return
		case name := <-f.remake:
			f.mu.Lock()
			current := name == f.consumer
			f.mu.Unlock()
			if current {
				f.remakeConsumer("its consumer stopped")
			}
		case <-tick.C:
			pos := f.position.Load()
			if f.checkStream(pos == seen) {
				f.remakeConsumer("no message came while the stream holds more")
			}
			seen = f.position.Load()
		}
	}
}

// checkStream looks at the stream: when it was deleted or created again,
// the feed fails for good; else it reports whether, with still, messages
// wait after the feed's position (it did not move since the last check).
func (f *JetStreamFeed) checkStream(still bool) (stalled bool) {
	if f.failed.Load() != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(f.quitCtx, f.cfg.StartTimeout)
	defer cancel()
	info, err := f.streamInfo(ctx)
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound) || err == nil && strconv.FormatInt(info.Created.UnixNano(), 36) != f.origin:
		f.fail()
		return false
	case err != nil:
		return false // NATS down: Ready says so
	}
	return still && info.State.LastSeq > f.position.Load()
}

// remakeConsumer makes a new consumer, retrying until it has one or Close.
func (f *JetStreamFeed) remakeConsumer(why string) {
	f.remakes.Add(1)
	f.log.Debug("making the JetStream consumer again", "stream", f.cfg.Stream, "why", why, "after", f.position.Load())
	wait := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(f.quitCtx, f.cfg.StartTimeout)
		err := f.makeConsumer(ctx)
		cancel()
		if f.failed.Load() != nil {
			return // the stream was replaced: no consumer will do (Ready says so)
		}
		if err == nil {
			if f.stalled.Swap(nil) != nil {
				f.log.Info("reading the JetStream stream again", "stream", f.cfg.Stream, "after", f.position.Load())
			}
			return
		}
		failure := fmt.Errorf("%w: %w", ErrUnavailable, err)
		if f.stalled.Swap(&failure) == nil {
			f.log.Warn("cannot read the JetStream stream; trying again", "stream", f.cfg.Stream, "err", err)
		}
		select {
		case <-f.quit:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// receive is the consumer's handler: one message at a time, in stream order.
func (f *JetStreamFeed) receive(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		f.log.Debug("JetStream message without metadata", "err", err)
		return
	}
	pos := md.Sequence.Stream
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed.Load() != nil || md.Consumer != f.consumer || pos <= f.last {
		return // replaced; from a consumer the feed let go; or read already
	}
	if md.Sequence.Consumer != f.consumerSeq+1 {
		// Lost on the way (a pull request lost with a node): take nothing
		// more from this consumer; the next starts after f.last.
		f.consumer = ""
		f.askRemake("")
		return
	}
	f.consumerSeq = md.Sequence.Consumer
	if f.consumerSeq == 1 && f.last > 0 && !f.sameStream() { // a new consumer, on the same stream?
		return
	}
	f.floorLocked(pos)
	f.last = pos
	f.position.Store(pos)
	topic := subjectToTopic(msg.Subject())
	if topics.ValidateTopic(topic) != nil {
		return // not an MQTT topic: no hub can take it, on any replica
	}
	m := bridge.Message{Topic: topic, Payload: msg.Data(), QoS: 1, Replay: pos <= f.snapshotEnd, Delivery: pos, Position: pos}
	f.index.Match(topic, func(s *feedSub) { s.fn(m) })
}

// floorLocked tells OnFloor of a jump before the message at pos.
func (f *JetStreamFeed) floorLocked(pos uint64) {
	expect := max(f.last, f.snapshotEnd) + 1
	if pos > f.snapshotEnd && pos != expect {
		f.holes.Add(1)
		f.log.Warn("messages left the JetStream stream before this hub read them: its clients resync", "stream", f.cfg.Stream,
			"missing_from", expect, "missing_to", pos-1)
		f.onFloor(pos-1, true)
	}
}

func (f *JetStreamFeed) onFloor(floor uint64, hole bool) {
	if f.cfg.OnFloor != nil {
		f.cfg.OnFloor(floor, hole)
	}
}

// sameStream checks, on a new consumer's first message, that the stream is
// the one the epoch names; if not, the feed fails for good. It waits for
// the server (bounded), on the delivering goroutine, once per consumer.
func (f *JetStreamFeed) sameStream() bool {
	ctx, cancel := context.WithTimeout(f.quitCtx, f.cfg.StartTimeout)
	defer cancel()
	info, err := f.streamInfo(ctx)
	switch {
	case f.quitCtx.Err() != nil:
		return false // closing: nothing more is delivered
	case errors.Is(err, jetstream.ErrStreamNotFound):
	case err != nil:
		f.log.Warn("cannot check the JetStream stream for a new consumer; going on", "stream", f.cfg.Stream, "err", err)
		return true
	case strconv.FormatInt(info.Created.UnixNano(), 36) == f.origin:
		return true
	}
	f.fail()
	return false
}

// fail stops the feed for good: the stream is not the one its epoch names.
func (f *JetStreamFeed) fail() {
	failure := fmt.Errorf("JetStream stream %s: %w", f.cfg.Stream, ErrStreamReplaced)
	if f.failed.CompareAndSwap(nil, &failure) {
		f.log.Error("the JetStream stream was replaced: this hub takes no more of its messages", "stream", f.cfg.Stream, "err", failure)
	}
}

// Subscribe calls fn for every message, from the next one on, whose topic
// matches filter, until cancel is called.
func (f *JetStreamFeed) Subscribe(filter string, fn func(bridge.Message)) (cancel func(), err error) {
	if err := topics.ValidateFilter(filter); err != nil {
		return nil, fmt.Errorf("filter %q: %w", filter, err)
	}
	s := &feedSub{fn: fn}
	f.mu.Lock()
	f.index.Add(filter, s)
	f.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.index.Remove(filter, s)
			f.mu.Unlock()
		})
	}, nil
}

// Ready says why the feed cannot bring messages now: nil when it can.
func (f *JetStreamFeed) Ready() error {
	if err := f.failed.Load(); err != nil {
		return *err
	}
	if !f.nc.IsConnected() {
		return fmt.Errorf("%w: NATS %s not connected", ErrUnavailable, redactNATS(f.cfg.URLs))
	}
	if err := f.stalled.Load(); err != nil {
		return *err
	}
	return nil
}

// FeedStats is what a feed counts.
type FeedStats struct {
	Position uint64 // the last message's stream sequence
	Holes    uint64 // jumps in the positions since the start
	Remakes  uint64 // consumers made again (lost, stalled)
}

// Stats returns the feed's counts.
func (f *JetStreamFeed) Stats() FeedStats {
	return FeedStats{Position: f.position.Load(), Holes: f.holes.Load(), Remakes: f.remakes.Load()}
}

// setNetUp logs a change of the NATS connection, once per change.
func (f *JetStreamFeed) setNetUp(up bool, err error) {
	if f.netUp.Swap(up) == up {
		return
	}
	if up {
		f.log.Info("NATS connection back", "url", redactNATS([]string{f.nc.ConnectedUrlRedacted()}))
		return
	}
	f.log.Warn("NATS connection lost; reconnecting", "err", err)
}

// Close stops reading and closes the connection.
func (f *JetStreamFeed) Close() error {
	f.stopOnce.Do(func() {
		close(f.quit)
		f.cancelQuit()
		if f.started.Load() {
			<-f.done // the supervisor: its waits for the server end with quitCtx
		}
		f.mu.Lock()
		cc := f.consume
		f.consume, f.consumer = nil, ""
		f.mu.Unlock()
		if cc != nil {
			cc.Stop()
		}
		f.nc.Close() // ends the subscriptions' goroutines
		if cc != nil {
			<-cc.Closed()
		}
	})
	return nil
}

// checkNATSURL refuses what nats.go would not connect to, before it tries.
func checkNATSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("NATS URL: %w", err) // url.Parse quotes the URL; its error has no password
	}
	switch u.Scheme {
	case "nats", "tls":
	default:
		return fmt.Errorf("NATS URL %s: the scheme must be nats:// or tls://", u.Redacted())
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return fmt.Errorf("NATS URL %s: host[:port] only, no path or query", u.Redacted())
	}
	return nil
}

// redactNATS joins URLs without their passwords, for logs and errors.
func redactNATS(urls []string) string {
	out := make([]string, len(urls))
	for i, raw := range urls {
		if u, err := url.Parse(raw); err == nil {
			out[i] = u.Redacted()
		} else {
			out[i] = "(unparsable URL)"
		}
	}
	return strings.Join(out, ",")
}
