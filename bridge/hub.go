package bridge

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/internal/defaults"
	"github.com/motehub/motehub/internal/refusals"
	"github.com/motehub/motehub/topics"
)

// The defaults of the bounds of the kept topics (Config.MaxTopics,
// HistoryLength, HistoryBytes), which a store of the same topics shares.
const (
	DefaultMaxTopics     = 10000
	DefaultHistoryLength = 120
	DefaultHistoryBytes  = 64 << 20
)

// Config tunes a Hub. The zero value of each field means its documented default.
type Config struct {
	// BusFilters are what the hub subscribes to on the Bus, unless
	// SubscribeOnDemand; they should not overlap. Default: ["#", "$SYS/#"],
	// every topic and the broker's own (which only users granted them see).
	BusFilters []string
	// SubscribeOnDemand makes the hub subscribe on the Bus only to what its
	// clients want, instead of BusFilters (see interest.go): for a hub in
	// front of a remote broker, whose traffic should grow with what its
	// clients watch. Default false.
	SubscribeOnDemand bool
	// SubscribeLinger is how long a Bus subscription no client wants any
	// more is kept, so that clients that come back soon (a page reload)
	// resume without a resync. Default 30 s.
	SubscribeLinger time.Duration
	// KeepSubscribed are filters a hub with SubscribeOnDemand stays
	// subscribed to on the Bus for its whole life, whether or not a client
	// wants them: what an Observer records (the history) with no browser
	// watching. Ignored without SubscribeOnDemand, whose BusFilters hold
	// everything. Default: none.
	KeepSubscribed []string
	// DefaultFilters are the subscriptions of a client that has not chosen
	// any (relative to its base). Default: ["#"].
	DefaultFilters []string
	// MaxSubscriptions bounds the filters one client may hold, and the
	// filters one request (a state read, an SSE stream, a long poll) may
	// name; past it the answer is an error with code "limit". Default 256.
	MaxSubscriptions int
	// MaxStateValues bounds the values one state read (GET /api/state,
	// clown.talk/-/state/get) answers with; an answer cut there says
	// "truncated". Default 10000.
	MaxStateValues int

	// QueueMessages bounds each client's outgoing queue in messages. Default 4096.
	QueueMessages int
	// QueueBytes bounds each client's outgoing queue in bytes. Default 4 MiB.
	QueueBytes int
	// WriteTimeout bounds every write to a client: a WebSocket or SSE
	// stream whose write waits longer is cut (the watchdog looks about ten
	// times per WriteTimeout, PongWait or KeepAlive, whichever is shortest,
	// and at most once a second). Default 10 s.
	WriteTimeout time.Duration
	// FlushShards is how many goroutines write the sessions' streams
	// (flusher.go). Default GOMAXPROCS.
	FlushShards int
	// CoalesceWindow is the longest a flush shard waits after a wide pass
	// (many sessions written at once) before its next one, so that each
	// session gets fewer, larger writes when the fan-out is wide; a pass
	// over fewer than 64 sessions waits only while the shard is busy (its
	// passes begin less than CoalesceWindow/4 apart), until CoalesceWindow/4
	// after it began, or CoalesceWindow when a session had 16 messages or
	// more waiting (high rates). Default 2 ms; negative: off.
	CoalesceWindow time.Duration

	// LogEntries bounds the event log clients resume from, in messages.
	// Default 16384.
	LogEntries int
	// LogBytes bounds the event log in bytes. Default 64 MiB.
	LogBytes int
	// LogMaxAge is how long a message stays available for resuming. Default 1 h.
	LogMaxAge time.Duration
	// MaxTopics bounds the topics whose last value (and history) the hub
	// keeps; the least recently updated goes first. Default 10000.
	MaxTopics int
	// HistoryLength is how many recent messages the hub keeps per topic, for
	// charts. Default 120.
	HistoryLength int
	// HistoryBytes bounds the last values and history the hub keeps, in
	// bytes (payloads and topic names plus a fixed overhead per topic and per
	// message); past it, as past MaxTopics, the topic updated least recently
	// goes first. Default 64 MiB.
	HistoryBytes int

	// HelloTimeout is how long a new WebSocket session waits for the client's
	// config/set before it starts with the defaults; nothing published in the
	// meantime is lost. Default 500 ms.
	HelloTimeout time.Duration
	// PongWait is how long a WebSocket may stay silent (no frame and no pong)
	// before it is closed; pings go out at 3/4 of it. Default 30 s.
	PongWait time.Duration
	// MaxMessageBytes is the largest WebSocket message a client may send;
	// a larger one is discarded and answered with a "too-large" error frame,
	// and the session goes on. Default 64 KiB.
	MaxMessageBytes int
	// MaxFrameBytes is the size past which a WebSocket message is abuse: the
	// session is closed with code 1009. Default 1 MiB (at least MaxMessageBytes).
	MaxFrameBytes int
	// MaxBatchBytes bounds one frame that joins queued lines for a client that
	// asked for batching. Default 64 KiB.
	MaxBatchBytes int
	// PublishTimeout bounds a browser's publish to the Bus. Default 10 s.
	PublishTimeout time.Duration

	// SSERetry is the reconnection delay an SSE stream asks EventSource for.
	// Default 2 s.
	SSERetry time.Duration
	// SSERefusedRetry is the reconnection delay of an EventSource refused by
	// a session limit: it gets a 200 stream that says why ("event: close")
	// and comes back after this long, where a 429 or 503 would make it stop
	// for good. Default 30 s.
	SSERefusedRetry time.Duration
	// KeepAlive is how often an idle SSE stream gets a comment, so proxies
	// do not cut it. Default 15 s.
	KeepAlive time.Duration
	// MaxPollWait bounds how long a long poll waits. Default 60 s.
	MaxPollWait time.Duration

	// AckTimeout is how long a command waits for its device's confirmation
	// before it is reported failed (see ack.go). Default 5 s.
	AckTimeout time.Duration
	// MaxPendingCommands bounds the commands one client may have waiting for
	// confirmation; the HTTP API's commands (POST /api/devices/{id}/command)
	// share a bound of 16 times it. Default 64.
	MaxPendingCommands int

	// Devices bounds the device model (see package devices and
	// docs/devices.md); its zero fields take the defaults of devices.Config
	// (10,000 devices, 256 entities each, 100,000 topics followed, discovery
	// payloads up to 16 MiB).
	Devices devices.Config
	// DeviceQueue bounds the messages waiting for the device model, which
	// takes them on a goroutine of its own; past it they are dropped and the
	// model is rebuilt from the last values (see devmodel.go). Default 65536.
	DeviceQueue int
	// DeviceQueueBytes bounds the same queue in bytes (topics and payloads,
	// plus 80 per message). Default 16 MiB.
	DeviceQueueBytes int

	// Authorizer decides what each client may read and publish: the same one
	// every door of the hub asks. Default: auth.Open(), everything allowed.
	Authorizer *auth.Authorizer
	// MaxSessions bounds the WebSocket and SSE sessions in total; more are
	// answered 503. Default 10000.
	MaxSessions int
	// MaxSessionsPerAddress bounds the sessions from one client address; more
	// are answered 429. Default 256.
	MaxSessionsPerAddress int
	// MessageRate bounds the messages per second one WebSocket client may
	// send; bursts of twice as many pass. Messages past it are dropped and
	// answered with a "rate-limited" error; a client that keeps sending at
	// many times the rate is closed (1008 "rate limit"). Default 100;
	// negative: no limit.
	MessageRate float64

	// AllowedOrigins are the origins (scheme://host[:port]) whose pages may
	// open a WebSocket besides the hub's own; "*" allows every origin. Requests
	// without an Origin header (non-browser clients) are always allowed.
	// Default: none, same origin only.
	AllowedOrigins []string

	// Epoch names the hub's event history, the part of event ids before the
	// sequence: printable ASCII without spaces, quotes or backslashes, at
	// most 128 bytes. Hubs that share an Epoch must number the same events
	// the same way (Positional). Default: a random one per run (or
	// Restore's).
	Epoch string
	// Positional makes the hub number each event by its Message.Position
	// instead of counting: a message whose position is not above the last
	// event's is dropped (and counted), and a client holding an id ahead of
	// the hub waits up to AheadWait for the hub to get there. With a shared
	// Epoch, every replica on the same ordered log then issues the same ids,
	// and a client resumes on any of them. The Bus reports what it may have
	// missed with ResyncFrom. Not with Restore. Default false.
	Positional bool
	// AheadWait bounds how long a client resuming from an id ahead of a
	// Positional hub waits for it; past it, the client resyncs
	// ("unknown-id"). Default 2 s.
	AheadWait time.Duration

	// Journal, when set, keeps every delivered message for the next run
	// (see Restore). Default: none, the hub's history is in memory only.
	Journal Journal
	// Restore is the history of an earlier run to go on from. Default: none,
	// a new epoch.
	Restore *Restored
	// Observers are told of every delivered message, in order (see
	// [Observer]): the place for what keeps a model of the devices. Default:
	// none besides the hub's own last values and the Journal.
	Observers []Observer

	// Refusals receives the sessions refused (an origin, a session limit,
	// filters the user may not read) and the clients cut off (too slow, too
	// fast): one WARN line each, summarised per address (package refusals);
	// the hub's doors share one. Default: a Log of the hub's own on Logger,
	// closed by Close.
	Refusals *refusals.Log

	// Logger receives the hub's logs. Default: slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if len(c.BusFilters) == 0 {
		c.BusFilters = []string{"#", "$SYS/#"}
	}
	if len(c.DefaultFilters) == 0 {
		c.DefaultFilters = []string{"#"}
	}
	defaults.Set(&c.SubscribeLinger, 30*time.Second)
	defaults.Set(&c.MaxSubscriptions, 256)
	defaults.Set(&c.QueueMessages, 4096)
	defaults.Set(&c.QueueBytes, 4<<20)
	defaults.Set(&c.WriteTimeout, 10*time.Second)
	defaults.Set(&c.FlushShards, runtime.GOMAXPROCS(0))
	defaults.Set(&c.CoalesceWindow, 2*time.Millisecond)
	defaults.Set(&c.LogEntries, 16384)
	defaults.Set(&c.LogBytes, 64<<20)
	defaults.Set(&c.LogMaxAge, time.Hour)
	defaults.Set(&c.MaxTopics, DefaultMaxTopics)
	defaults.Set(&c.HistoryLength, DefaultHistoryLength)
	defaults.Set(&c.HistoryBytes, DefaultHistoryBytes)
	defaults.Set(&c.MaxStateValues, 10000)
	defaults.Set(&c.HelloTimeout, 500*time.Millisecond)
	defaults.Set(&c.PongWait, 30*time.Second)
	defaults.Set(&c.MaxMessageBytes, 64<<10)
	defaults.Set(&c.MaxFrameBytes, 1<<20)
	c.MaxFrameBytes = max(c.MaxFrameBytes, c.MaxMessageBytes)
	defaults.Set(&c.MaxBatchBytes, 64<<10)
	defaults.Set(&c.PublishTimeout, 10*time.Second)
	defaults.Set(&c.SSERetry, 2*time.Second)
	defaults.Set(&c.SSERefusedRetry, 30*time.Second)
	defaults.Set(&c.KeepAlive, 15*time.Second)
	defaults.Set(&c.MaxPollWait, 60*time.Second)
	defaults.Set(&c.AheadWait, 2*time.Second)
	defaults.Set(&c.AckTimeout, 5*time.Second)
	defaults.Set(&c.MaxPendingCommands, 64)
	defaults.Set(&c.DeviceQueue, DefaultDeviceQueue)
	defaults.Set(&c.DeviceQueueBytes, DefaultDeviceQueueBytes)
	defaults.Set(&c.MaxSessions, 10000)
	defaults.Set(&c.MaxSessionsPerAddress, 256)
	defaults.Set(&c.MessageRate, 100)
	if c.Authorizer == nil {
		c.Authorizer = auth.Open()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Refusals == nil {
		c.Refusals = refusals.New(refusals.Config{Logger: c.Logger})
	}
}

// Hub connects a Bus to browser sessions. Create it with [New].
type Hub struct {
	cfg      Config
	bus      Bus
	log      *slog.Logger
	epoch    string
	boot     string // this run's: config/ok's "boot"
	upgrader websocket.Upgrader
	authz    *auth.Authorizer
	events   *eventLog
	state    *stateStore
	// responseTopic is where MQTT v5 devices answer commands.
	responseTopic string
	ownRefusals   bool // cfg.Refusals is the hub's own: Close closes it

	fan      *fanout      // the index, the numbering, the queues' push (fanout.go); its own lock
	sess     *sessions    // the sessions and their limits (sessions.go); its own lock
	acks     *acks        // commands waiting for their devices (ack.go); its own lock
	interest *interest    // the Bus subscriptions (interest.go); its own lock
	devices  *deviceModel // the device model and its worker (devmodel.go); its own locks
	views    *deviceViews // who sees what of the devices, and who follows them (devview.go); its own lock
	flush    *flushers    // the goroutines that write the sessions' streams (flusher.go); a lock per shard
	watch    *watchdog    // the sessions' keep-alives and timeouts (watchdog.go); its own lock
	readers  *idleReaders // the idle WebSocket sessions' parked readers (idlereaders.go); its own lock
	stats    counters
}

// New creates a hub on bus and subscribes it to cfg.BusFilters (with
// cfg.SubscribeOnDemand, to what its clients want as they come).
func New(bus Bus, cfg Config) (*Hub, error) {
	ownRefusals := cfg.Refusals == nil
	cfg.setDefaults()
	for _, f := range slices.Concat(cfg.BusFilters, cfg.DefaultFilters, cfg.KeepSubscribed) {
		if err := topics.ValidateFilter(f); err != nil {
			return nil, fmt.Errorf("filter %q: %w", f, err)
		}
	}
	if err := checkEpoch(cfg.Epoch); err != nil {
		return nil, err
	}
	if cfg.Positional && cfg.Restore != nil {
		return nil, errors.New("a positional hub numbers events by its Bus's positions: it restores no history of its own")
	}
	h := &Hub{
		cfg:    cfg,
		bus:    bus,
		log:    cfg.Logger,
		epoch:  cmp.Or(cfg.Epoch, newID(6)),
		boot:   newID(6),
		authz:  cfg.Authorizer,
		events: newEventLog(cfg.LogEntries, cfg.LogBytes, cfg.LogMaxAge),
		state:  newStateStore(cfg.MaxTopics, cfg.HistoryBytes, cfg.HistoryLength),

		ownRefusals: ownRefusals,
	}
	h.interest = newInterest(cfg.SubscribeOnDemand, cfg.SubscribeLinger, bus, h.state, h.log)
	for _, f := range cfg.KeepSubscribed {
		h.interest.want(f, 1) // never taken back: wanted until Close
	}
	var seq uint64
	if r := cfg.Restore; r != nil {
		seq = h.restore(r)
	}
	h.sess = newSessions(cfg.MaxSessions, cfg.MaxSessionsPerAddress, &h.stats)
	h.fan = &fanout{epoch: h.epoch, authz: h.authz, events: h.events, state: h.state, interest: h.interest,
		stats: &h.stats, log: h.log, defaultFilters: cfg.DefaultFilters, maxSubs: cfg.MaxSubscriptions, seq: seq,
		positional: cfg.Positional, aheadWait: cfg.AheadWait}
	h.fan.offerFn = h.fan.offer
	// Where v5 devices answer this hub's commands: its own, even when
	// replicas share an epoch.
	h.responseTopic = "motehub/response/" + h.epoch
	if cfg.Epoch != "" {
		h.responseTopic = "motehub/response/" + newID(6)
	}
	h.acks = newAcks(cfg.AckTimeout, cfg.MaxPendingCommands, 16*cfg.MaxPendingCommands, h.responseTopic, h.fan.send, &h.stats)
	h.views = newDeviceViews(h.authz, h.fan.notify)
	h.devices = newDeviceModel(cfg.Devices, cfg.DeviceQueue, cfg.DeviceQueueBytes, h.state, h.views, &h.stats)
	h.devices.start() // from the restored values, before any event; until Close
	// What the fan-out tells of each event, in order: the observers (the
	// state store first: the device model rebuilds from it), then (after
	// the clients got it) the acks.
	h.fan.observers = []Observer{h.state}
	if cfg.Journal != nil {
		h.fan.observers = append(h.fan.observers, journalObserver{cfg.Journal})
	}
	h.fan.observers = append(h.fan.observers, h.devices)
	h.fan.observers = append(h.fan.observers, cfg.Observers...)
	h.fan.acks = h.acks
	h.flush = newFlushers(h, cfg.FlushShards) // until Close; before the first delivery, which may help it
	h.interest.fan, h.interest.deliver = h.fan, h.deliver
	h.upgrader = newUpgrader(h)
	if cfg.SubscribeOnDemand {
		go h.interest.reconcile() // until Close
	} else if err := h.interest.subscribeFixed(cfg.BusFilters); err != nil {
		h.interest.stop(context.Background())
		h.devices.close()
		h.flush.close()
		return nil, fmt.Errorf("subscribe on the bus: %w", err)
	}
	h.watch = newWatchdog(h)          // until Close
	h.readers = newIdleReaders(h.log) // its waiter from the first park until Close
	return h, nil
}

// prepareScheduled makes c's stream written by the flushers through tx,
// before c is attached. The caller then registers it with the watchdog.
func (h *Hub) prepareScheduled(c *client, tx streamTransport) {
	c.w.tx = tx
	c.w.done = make(chan struct{})
	h.flush.assign(c)
	c.out.notify = c.wake
}

// Epoch names this hub's event history; event ids are "<epoch>-<seq>".
func (h *Hub) Epoch() string { return h.epoch }

// restore goes on from an earlier run's history, and returns the sequence
// number of its last event.
func (h *Hub) restore(r *Restored) uint64 {
	if r.Epoch != "" {
		h.epoch = r.Epoch
	}
	h.events.restore(r.Log, r.Seq)
	h.state.restore(r.Values, r.History)
	h.state.seq = r.Seq
	return r.Seq
}

// Close ends every session with "going away" and unsubscribes from the Bus.
// It returns when every session has ended, or when ctx ends, after cutting
// the connections that were still open.
func (h *Hub) Close(ctx context.Context) error {
	clients, first := h.sess.close()
	if !first {
		return nil
	}
	h.fan.close()
	h.devices.close()
	h.acks.stop()
	h.interest.stop(ctx)
	err := h.sess.end(ctx, clients)
	// Every session has ended: its close written, its writer gone.
	h.watch.close()
	h.flush.close()
	h.readers.close()
	if h.ownRefusals {
		h.cfg.Refusals.Close()
	}
	return err
}

// deliver is the Bus callback: the message is encoded once (every
// client's frame is made from these bytes), then the fan-out takes it (see
// fanout.deliver). It never blocks (see the package documentation).
func (h *Hub) deliver(m Message) {
	payload, text := payloadToJSON(m.Payload)
	now := time.Now()
	h.fan.deliver(&m, Record{Topic: m.Topic, Payload: payload, Text: text, Time: now, Retained: m.Retain,
		Cleared: m.Retain && len(m.Payload) == 0}) // an empty retained message clears the topic, as in MQTT
	h.flush.help(now) // a shard kept from running by the goroutines delivering: flushed here, under no lock
}

// detach removes c from the hub. Call it once, after a successful attach.
func (h *Hub) detach(c *client) {
	if c.scheduled() {
		h.watch.remove(c)
	}
	h.fan.remove(c)
	h.views.follow(c, false)
	h.sess.remove(c) // last: Close waits for it
}

// checkQuery validates what one request names: base, and filters relative
// to it, at most Config.MaxSubscriptions of them. The one check of every
// state read, SSE stream and long poll.
func (h *Hub) checkQuery(base string, filters []string) error {
	if len(filters) > h.cfg.MaxSubscriptions {
		return errorf(CodeLimit, "%d filters, at most %d per request", len(filters), h.cfg.MaxSubscriptions)
	}
	if err := topics.ValidateBase(base); err != nil {
		return &Error{Code: CodeBadTopic, Message: fmt.Sprintf("invalid base topic %q: %v", base, err)}
	}
	return checkFilters(base, filters)
}

// checkFilters validates filters relative to base.
func checkFilters(base string, filters []string) error {
	for _, f := range filters {
		err := topics.ValidateFilter(f)
		if err == nil {
			err = topics.ValidateFilter(topics.Mount(base, f))
		}
		if err != nil {
			return &Error{Code: CodeBadTopic, Message: fmt.Sprintf("invalid filter %q: %v", f, err), Topic: f}
		}
	}
	return nil
}

// authorize decides who's reading of filters (relative to base): an error
// when one names nothing who may read; else whether every message they
// match needs a check (some filter is not fully covered by who's rights).
func authorize(authz *auth.Authorizer, stats *counters, who auth.Identity, base string, filters []string) (checkReads bool, err error) {
	for _, f := range filters {
		allowed, exact := authz.Subscription(who, topics.Mount(base, f))
		if !allowed {
			stats.forbidden.Add(1)
			return false, &Error{Code: CodeForbidden, Message: fmt.Sprintf("%s may read nothing that %q matches", who, f), Topic: f}
		}
		checkReads = checkReads || !exact
	}
	return checkReads, nil
}

// subscribe adds filters to c's subscriptions.
func (h *Hub) subscribe(ctx context.Context, c *client, filters []string) error {
	if err := checkFilters(c.base, filters); err != nil {
		return err
	}
	checkReads, err := authorize(h.authz, &h.stats, c.who, c.base, filters)
	if err != nil {
		return err
	}
	h.interest.follow(ctx, c.base, filters, interestWait)
	return h.fan.subscribe(c, filters, checkReads)
}

// Publish sends a message from who to the devices: topic is relative to
// base, payload a JSON value (see [PayloadFromJSON]). Errors are *Error.
func (h *Hub) Publish(ctx context.Context, who auth.Identity, base, topic string, payload []byte) error {
	m, err := h.prepareMessage(who, base, topic, payload)
	if err != nil {
		return err
	}
	return h.publish(ctx, m, topic, sourceAPI)
}

// prepareMessage validates a browser's publish, checks that who may make it,
// and makes its MQTT message.
func (h *Hub) prepareMessage(who auth.Identity, base, topic string, payload []byte) (Message, error) {
	abs, err := h.checkPublish(who, base, topic)
	if err != nil {
		return Message{}, err
	}
	mqttPayload, err := PayloadFromJSON(payload)
	if err != nil {
		e := AsError(err)
		e.Topic = topic
		return Message{}, e
	}
	return Message{Topic: abs, Payload: mqttPayload, QoS: 1}, nil
}

// checkPublish validates topic (relative to base) for a publish by who,
// checks that who may make it, and returns the absolute topic: the one
// check of every publish, raw or a command through the device model. A
// refusal by the ACL is counted.
func (h *Hub) checkPublish(who auth.Identity, base, topic string) (string, error) {
	abs, err := h.mayPublish(who, base, topic)
	if e, ok := errors.AsType[*Error](err); ok && e.Code == CodeForbidden {
		h.stats.forbidden.Add(1)
	}
	return abs, err
}

// mayPublish is checkPublish without counting: what a publish would be
// told, for a dry run.
func (h *Hub) mayPublish(who auth.Identity, base, topic string) (string, error) {
	if err := topics.ValidateTopic(topic); err != nil {
		return "", &Error{Code: CodeBadTopic, Message: fmt.Sprintf("invalid topic: %v", err), Topic: topic}
	}
	abs := topics.Mount(base, topic)
	if err := topics.ValidateTopic(abs); err != nil {
		return "", &Error{Code: CodeBadTopic, Message: fmt.Sprintf("invalid topic: %v", err), Topic: topic}
	}
	if strings.HasPrefix(abs, "$") {
		return "", &Error{Code: CodeBadTopic, Message: "topics starting with '$' are reserved for the broker", Topic: topic}
	}
	if strings.HasPrefix(topic, controlPrefix) {
		return "", &Error{Code: CodeBadTopic, Message: "unknown control topic", Topic: topic}
	}
	if !h.authz.Allowed(who, auth.Write, abs) {
		return "", &Error{Code: CodeForbidden, Message: fmt.Sprintf("%s may not publish here", who), Topic: topic}
	}
	return abs, nil
}

// publish hands m to the Bus; topic is how the client named it, for errors.
func (h *Hub) publish(ctx context.Context, m Message, topic string, src source) error {
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	if err := h.bus.Publish(ctx, m); err != nil {
		h.log.Warn("publish to the bus failed", "topic", m.Topic, "err", err)
		return &Error{Code: CodeUnavailable, Message: "the broker did not take the message: " + err.Error(), Topic: topic}
	}
	h.stats.publishedBy[src].Add(1)
	return nil
}

// StateResult is the answer of a state read.
type StateResult struct {
	// ID is the event the values are current at: resume a stream from it.
	ID string `json:"id"`
	// Values are sorted by topic; at most Config.MaxStateValues of them.
	Values []Value `json:"values"`
	// Truncated says that more topics matched than Values holds: the first
	// ones by topic came; ask with narrower filters for the rest.
	Truncated bool `json:"truncated,omitempty"`
}

// State returns the last values, readable by who, of the topics under base
// matching filters (relative to base; at most Config.MaxSubscriptions of
// them), at most Config.MaxStateValues, and the id of the event they are
// current at. Errors are *Error.
//
// A hub subscribed on demand subscribes to filters first (and keeps them
// for a while), waiting for the broker's retained messages.
func (h *Hub) State(ctx context.Context, who auth.Identity, base string, filters []string) (StateResult, error) {
	if err := h.checkQuery(base, filters); err != nil {
		return StateResult{}, err
	}
	h.interest.follow(ctx, base, h.readableFilters(who, base, filters), interestWait)
	return h.readState(who, base, filters, h.cfg.MaxStateValues), nil
}

// readState reads the last values of filters (relative to base) that who
// may read, at most limit of them (0: all). It scans a snapshot of the
// state store outside every lock (see stateStore).
func (h *Hub) readState(who auth.Identity, base string, filters []string, limit int) StateResult {
	snap, seq := h.state.snapshotAt()
	values := valuesOf(snap, base, newFilterSet(base, filters), h.readKeep(who))
	return h.stateResult(values, seq, limit)
}

// stateResult cuts values at limit (0: none) for the answer current at seq.
func (h *Hub) stateResult(values []Value, seq uint64, limit int) StateResult {
	res := StateResult{ID: eventID(h.epoch, seq), Values: values}
	if res.Values == nil {
		res.Values = []Value{}
	}
	if limit > 0 && len(res.Values) > limit {
		res.Values, res.Truncated = res.Values[:limit:limit], true
	}
	return res
}

// readKeep is the check of every topic a state read by who lets through:
// nil when every one may be read.
func (h *Hub) readKeep(who auth.Identity) func(topic string) bool {
	if !h.authz.Enabled() {
		return nil
	}
	return func(topic string) bool { return h.authz.Allowed(who, auth.Read, topic) }
}

// sendStateAt queues for c the state/ok frame of filters (relative to c's
// base), exactly where c's live stream is, so that no older value follows
// a newer one. It reads a snapshot of the values outside every lock, brings
// it up to date from the event log, and takes the fan-out lock only for the
// events delivered during the last step (a few) and the queueing.
func (h *Hub) sendStateAt(c *client, filters []string) error {
	fs, keep := newFilterSet(c.base, filters), h.readKeep(c.who)
	var entries []logEntry
	for {
		snap, at := h.state.snapshotAt()
		values := valuesOf(snap, c.base, fs, keep)
		var err error
		for attempt := 0; err == nil; attempt++ {
			values, at, entries, err = h.catchUp(values, at, math.MaxUint64, entries, fs, c.base, keep)
			if err != nil {
				break
			}
			frame := stateFrame(h.stateResult(values, at, h.cfg.MaxStateValues), c.text.Load())
			var update func(seq uint64) ([]byte, error)
			if attempt >= 3 {
				// A busy hub: the last few events and the encoding under the lock.
				update = func(seq uint64) ([]byte, error) {
					var err error
					values, at, entries, err = h.catchUp(values, at, seq+1, entries, fs, c.base, keep)
					if err != nil {
						return nil, err
					}
					return stateFrame(h.stateResult(values, at, h.cfg.MaxStateValues), c.text.Load()), nil
				}
			}
			var sent bool
			if sent, err = h.fan.sendAt(c, at, frame, update); sent {
				return nil
			}
		}
		// The log moved on past the values: take a new snapshot.
	}
}

// catchUp applies to values, current at event `at`, the log's events after
// it and before `before`, a chunk at a time (the log's lock is held for one
// chunk's copy); buf is reused.
func (h *Hub) catchUp(values []Value, at, before uint64, buf []logEntry, fs *filterSet, base string, keep func(string) bool) ([]Value, uint64, []logEntry, error) {
	for {
		var err error
		buf, err = h.events.read(buf[:0], at, before, replayChunk)
		if err != nil || len(buf) == 0 {
			return values, at, buf, err
		}
		values = applyEntries(values, buf, base, fs, keep)
		at = buf[len(buf)-1].seq
	}
}

// readableFilters keeps the filters (relative to base) of which who may
// read something: the others are not worth a subscription.
func (h *Hub) readableFilters(who auth.Identity, base string, filters []string) []string {
	out := make([]string, 0, len(filters))
	for _, f := range filters {
		if allowed, _ := h.authz.Subscription(who, topics.Mount(base, f)); allowed {
			out = append(out, f)
		}
	}
	return out
}

// History returns up to limit of the most recent messages on topic, oldest
// first (at most Config.HistoryLength).
func (h *Hub) History(who auth.Identity, topic string, limit int) ([]Sample, error) {
	if err := topics.ValidateTopic(topic); err != nil {
		return nil, &Error{Code: CodeBadTopic, Message: fmt.Sprintf("invalid topic: %v", err), Topic: topic}
	}
	if !h.authz.Allowed(who, auth.Read, topic) {
		h.stats.forbidden.Add(1)
		return nil, &Error{Code: CodeForbidden, Message: fmt.Sprintf("%s may not read this topic", who), Topic: topic}
	}
	return h.state.samples(topic, limit), nil
}

// Recheck applies the Authorizer's new users to the sessions: a client whose
// user is gone is closed (4003 "revoked"); the others keep their filters,
// and what their new rights leave them is checked message by message.
func (h *Hub) Recheck() { h.fan.recheck(h.sess) }

// Resync tells every session that messages may have been lost on the way
// to the hub (the connection to a remote broker dropped and came back): each
// gets a resync with the last values, then goes on live; and no client may
// resume from an event before now. reason is what the clients are told
// (ResyncBrokerConnected or ResyncBrokerGap, with words of the caller's).
func (h *Hub) Resync(reason ResyncNotice) {
	clients := h.fan.resyncFrom(h.sess, 0)
	for _, c := range clients {
		h.fan.restartWithResync(c, reason)
	}
	if len(clients) > 0 {
		h.log.Info("sessions told to resync", "sessions", len(clients), "reason", reason.Reason)
	}
}

// ResyncFrom is Resync for a Positional hub whose Bus may have missed the
// messages up to position from (a hole in its log, or, at its start, a
// snapshot of last values rather than every message): no client resumes
// from an event before from, and every session resyncs. Call it before
// handing the hub the message after the hole, from the goroutine that
// delivers, so that no client resumes across the hole meanwhile.
func (h *Hub) ResyncFrom(from uint64, reason ResyncNotice) {
	clients := h.fan.resyncFrom(h.sess, from)
	for _, c := range clients {
		h.fan.restartWithResync(c, reason)
	}
	if len(clients) > 0 {
		h.log.Info("sessions told to resync", "sessions", len(clients), "reason", reason.Reason)
	}
}

// checkEpoch refuses an epoch that would not survive an SSE id line, a JSON
// string or a URL query unescaped.
func checkEpoch(epoch string) error {
	if len(epoch) > 128 {
		return fmt.Errorf("epoch %q: longer than 128 bytes", epoch)
	}
	for _, r := range epoch {
		if r <= ' ' || r > '~' || r == '"' || r == '\\' {
			return fmt.Errorf("epoch %q: printable ASCII without spaces, quotes or backslashes only", epoch)
		}
	}
	return nil
}

// BusFilters returns the filters the hub is subscribed to on the Bus now,
// sorted.
func (h *Hub) BusFilters() []string { return h.interest.busFilters() }

// newID returns n random bytes as hex.
func newID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}
