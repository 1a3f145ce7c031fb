// Package bridge is the hub between MQTT and browsers: it takes every message
// from a [Bus], finds the browser clients that want it through a topic index,
// encodes it once in the Clown.Talk format and hands the same bytes to each of
// them; and it turns what browsers send into validated publishes on the Bus.
//
// The package knows nothing of MQTT libraries. It declares [Bus], and package
// broker implements it for the embedded broker and for a remote one. It
// keeps a model of the devices (package devices, pure) current with what it
// delivers, serves it to browsers, and sends commands through it
// (docs/devices.md).
//
// # Concurrency contract
//
// [Hub] composes parts that each own their state under their own lock:
//
//   - the fan-out (fanout.go): the topic index, the sequence number (the
//     one place that numbers events), the event being fanned out, the long
//     polls' wake-up, the resume floor, and the fields of each client that
//     its (re)start sets (filters, format, started). Held for O(1) work,
//     O(matching clients) per message, or O(the filters of one client or
//     request) (a state/get also for the few events delivered while it
//     read); Recheck and Resync go over every session, and a resync copies
//     one pointer per kept topic, shared by the sessions restarted within
//     the next 1024 events.
//   - the sessions (sessions.go): the attached clients, handshakes' reserved
//     places, the counts per address and the limits, the WaitGroup Close
//     waits on. Held for O(1) work, O(sessions) to list them.
//   - the event log (eventlog.go), the ring clients resume from: appended
//     by the fan-out only; a reader holds its lock to copy one chunk (256
//     entries).
//   - the state store (state.go), last values and history: an observer.
//     Its lock is held by a reader for one pointer copy per kept topic (a
//     snapshot, which it then scans), by History for one topic's samples,
//     and by the reconciler to delete the values no subscription brings.
//   - the interest (interest.go), the Bus subscriptions: told of each index
//     change (O(1)), its lock held otherwise for map swaps or the filters of
//     one request. One goroutine of the hub's, the reconciler, plans on its
//     own copy under no lock and calls the Bus under none. A client's start
//     waits for the subscriptions it needs, bounded.
//   - the command acks (ack.go): settled by the fan-out after each message,
//     O(1) per command; they reach clients through a send function that
//     only queues, or an HTTP request through a buffered channel.
//   - the device model (devmodel.go): an observer that appends each event
//     to a bounded queue under the queue's lock (O(1)); one goroutine of
//     the hub's, the model worker, woken by the first record, lets records
//     gather for a few milliseconds, then applies the queue a batch at a time to
//     the devices.Model under the model's own lock (a chunk of records per
//     hold), and, on overflow, rebuilds it from a snapshot of the state
//     store; Close waits for the chunk it is applying, not the rest of its
//     batch. Requests (lists, commands) hold the model's lock for one call
//     of the model.
//   - the device views (devview.go): the sessions that follow devices,
//     under a leaf lock held to add, remove or list them; the worker sends
//     them device frames through their queues after releasing the model's
//     lock.
//   - each client's queue (client.go), bounded in messages and bytes: a
//     push or a take holds its lock for O(1) work (amortized, for a client
//     with overflow "latest" whose queue conflates: latest.go; the
//     conflated lines are copied by the writer after the take, outside it).
//   - the flush shards (flusher.go): each holds its lock to append a
//     client to its ready list (O(1); a push that makes a queue non-empty
//     does it, after the queue's lock, and may hold the fan-out's or the
//     acks') or to swap the list out. A pass over the list is run under
//     the shard's pass lock, by its goroutine or, when a narrow list (a
//     few clients, as dashboards) has waited longer than a few
//     milliseconds (the goroutine kept from running), by a delivery's
//     goroutine after the fan-out, under no other lock (it only tries: a
//     pass already running is left to finish).
//   - the watchdog (watchdog.go): its lock is held to add or remove a
//     session, or to copy a chunk of 256 of them; what its checks lead to
//     (a close, a wake, a start with the default filters) runs outside it.
//
// The Bus callback ([Hub] subscribes with one per bus filter; Hub.deliver)
// encodes the message once, then under the fan-out lock numbers it (by
// counting, or, for a Positional hub, by its Message.Position, dropping one
// not above the last),
// appends it to the event log, tells the observers (the state store, the
// Journal, Config.Observers: O(1) each, under their own locks), pushes it by
// reference onto each matching client's queue and settles the acks it
// confirms. Then, under none of these locks, it runs the pass of a flush
// shard whose ready list has waited too long (writes that never wait). It
// waits for no client, no network and no goroutine other than
// the holders of these locks, each held only for the bounded work above:
// the fan-out lock (its longest holders are Recheck and Resync, which list
// the sessions under it), the event log's, the state store's,
// the interest's, the acks', a queue's, and the sessions' (taken by the
// fan-out to list them). Scans that grow with topics or filters (state
// reads, long polls, replays, the planning of Bus subscriptions) run
// outside all of these, on snapshots or in chunks. A Journal's Record and
// an Observer must not block.
//
// Lock order: the fan-out lock first; under it, any one of the others
// (event log, state store, interest, acks, sessions, a queue, the device
// model's queue; the acks' lock may be followed by a queue's, when an ack is
// sent), then, after the queue's is released, a flush shard's (a wake). No
// lock is held while taking the fan-out lock, and no other two are
// nested: the model worker takes the model's lock, the state store's (a
// snapshot), the views' and a client queue's one at a time.
//
// Sessions:
//
//   - A session is attached (sessions) before its transport commits to it
//     (a WebSocket handshake reserves its place) and detached last: detach
//     takes the client out of the index under the fan-out lock, for good,
//     then out of the sessions, and Close waits for it. Close marks the
//     sessions closed, so no client attaches after it lists them, then
//     stops the fan-out, the model worker, the acks and the reconciler,
//     cancels the Bus
//     subscriptions, tells every listed
//     client "going away", and returns once every session has ended (or its
//     context ends, after cutting the connections still open).
//   - A client has one writer at a time. A WebSocket's stream, and an SSE
//     stream over HTTP/1.1 (hijacked), are scheduled (flusher.go): a queue
//     that stops being empty puts its client on its flush shard's ready
//     list (Config.FlushShards goroutines; a delivery runs a pass itself
//     when the list has waited too long); the shard frames what is
//     waiting into one buffer and tries one write that never waits; what
//     would wait (a full socket, a catchup, more than the shard's buffer,
//     TLS) goes to a writer goroutine started for that client alone
//     (writer.go), which ends once the queue is empty. Which of them owns
//     the client is one atomic (writeState.owner: idle, owned, done); only
//     the owner takes from the queue and writes, and an owner that lets go
//     looks again, so nothing queued meanwhile waits. An idle scheduled
//     session holds no writer, ticker, timer or write buffer; an idle SSE
//     stream holds its reader's goroutine, an idle WebSocket session not
//     even that (see the parked readers below).
//   - No write sets a deadline: a blocking write records when it began
//     (streamConn), and the watchdog, one goroutine of the hub's, cuts one
//     past Config.WriteTimeout; it also pings, closes a WebSocket silent for
//     Config.PongWait, and starts one that did not configure itself within
//     Config.HelloTimeout. An SSE stream net/http cannot hand over (HTTP/2)
//     keeps a writer loop on its handler's goroutine (writeLoop), with its
//     own ticker and deadlines.
//   - A client whose queue overflows is marked slow on the publish path; its
//     writer closes it with 4008 "slow". The publisher never waits for it.
//     With overflow "latest" (latest.go) the queue keeps the newest message
//     of each topic instead, within the same bounds, and the client is
//     marked slow only when its topics alone exceed them.
//   - A scheduled session's reader runs on a goroutine of its own, which
//     waits for input at a shallow stack: ServeWebSocket and ServeEvents
//     return once the connection is the hub's, and the hub owns the session
//     from attach to detach. A publish from a browser blocks only that
//     browser's reader. A WebSocket session's reader that has read
//     everything parks instead of waiting (idlereaders.go): its socket goes
//     in an epoll set of the hub's, which one goroutine waits on, and its
//     goroutine returns. Its client's input, or the session's end (its
//     close is written, or its connection cut), takes it out and starts
//     its reader again; the idle readers' lock is a leaf, held for a map
//     change and one epoll_ctl. Where nothing parks (TLS, not Linux) the
//     reader waits on its goroutine. Close stops the flushers, the
//     watchdog and the parked readers' waiter after every session has
//     ended.
//   - A WebSocket session ends with a lingering close (package
//     internal/linger): the close frame, a half-close, then what the client
//     still sends is drained for a bounded moment, so that the close frame
//     reaches it instead of a reset. An SSE stream ends with "event: close"
//     and the reason (a hijacked one, lingering as a WebSocket does).
//   - A refused handshake or stream (an origin, a session limit, filters
//     the user may not read) and a session cut off (slow, flooding, too
//     large) are reported to Config.Refusals (package internal/refusals,
//     shared with the broker and the HTTP layer) by the handler or by the
//     session's end, under no lock of the hub's; its own lock is a leaf.
//   - [Hub.Resync], [Hub.ResyncFrom] and [Hub.Recheck] may be called from
//     any goroutine; a Bus calls ResyncFrom from the goroutine that
//     delivers, before the message after a hole, so that no client resumes
//     across the hole meanwhile.
//   - A client resuming from an id ahead of a Positional hub (issued by a
//     replica further along the same log) waits for the hub to get there,
//     at most Config.AheadWait, before its (re)start takes the fan-out
//     lock: on its own goroutine (the reader's, an SSE or long-poll
//     handler's), under no lock, woken by the fan-out's channel for long
//     polls. The watchdog's hello does not start a WebSocket that waits so
//     (client.awaiting): its first frame is still its config/ok.
//   - The admin view's reads (admin.go) list the sessions under the
//     sessions' lock, then take the fan-out lock once per listed session
//     to copy its filters (O(the filters of one client)) and its queue's
//     lock for its length, one after the other; a disconnect is a close
//     with [ReasonDisconnected], as any other.
//
// All exported methods of Hub are safe for concurrent use.
package bridge
