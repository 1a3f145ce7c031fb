// Package bridge is the hub between MQTT and browsers: it takes every message
// from a [Bus], finds the browser clients that want it through a topic index,
// encodes it once in the Clown.Talk format and hands the same bytes to each of
// them; and it turns what browsers send into validated publishes on the Bus.
//
// The package knows nothing of MQTT libraries. It declares [Bus], and package
// broker implements it for the embedded broker and for a remote one.
//
// # Concurrency contract
//
//   - The Bus callback ([Hub] subscribes with one per bus filter; deliver in
//     hub.go) does O(matching clients) work and waits for no client and no
//     network. It encodes the message once, then under the hub's lock (the
//     fan-out lock) numbers it in the event log, tells the observers (the
//     last values and history, the Journal, Config.Observers: each with its
//     own state and lock, O(1) each), appends it, by reference, to each
//     matching client's bounded queue, and settles the command acks it
//     confirms (their own lock). It may wait for exactly these locks, each
//     held only for bounded work:
//     the hub's lock, whose holders do O(1) work or O(the filters of one
//     client or request) (attach, subscribe, a session's start, a resume
//     check; a state/get also the few events delivered while it read),
//     except Resync, Recheck and Close, which go over every client;
//     the event log's lock, held by a reader for the copy of one chunk
//     (256 entries); the state store's lock, held by a reader for one
//     pointer copy per kept topic (its snapshot), by History for one
//     topic's samples, by the reconciler for deleting the values no
//     subscription brings any more; a client queue's lock, held by its
//     writer to swap the queue out; the acks' lock, held for O(1) per
//     command, O(pending commands) when a client leaves; the interest lock
//     (taken inside the hub's lock by subscription changes, O(1)), held by
//     others only for map swaps or the filters of one request. Scans that
//     grow with topics or filters (state reads, long polls, replays, the
//     planning of Bus subscriptions) run outside all of these, on snapshots
//     or in chunks. A Journal's Record and an Observer are called under the
//     hub's lock and must not block.
//   - Each client has one writer goroutine that drains its queue to the network
//     with a deadline on every write. The writer is owned by the client's session,
//     which waits for it before it ends. A WebSocket writer puts everything one
//     drain takes into one write (coalesce.go): frames encoded once per message,
//     one system call and one deadline per drain, a pooled buffer held only
//     while draining.
//   - A client whose queue overflows (messages or bytes, see [Config]) is marked
//     slow on the publish path; its writer closes it with code 4008 "slow". The
//     publisher never waits for it and the other clients never notice it.
//   - An SSE stream is written from its HTTP handler's goroutine. A WebSocket
//     session's reader runs on a goroutine of its own: ServeWebSocket returns once the
//     connection is upgraded, so net/http frees what it held for the request,
//     and the hub owns the session from attach to detach. A publish from a
//     browser blocks only that browser's reader.
//   - With Config.SubscribeOnDemand, one goroutine owned by the hub (the
//     reconciler, interest.go) makes and cancels the Bus subscriptions that
//     the clients' filters need. It plans on its own copy of what is wanted,
//     fed by changes, under no lock, and calls the Bus under none; a
//     client's start waits for the subscriptions, bounded. [Hub.Resync] may
//     be called from any goroutine.
//   - Lock order: the hub's lock, then the interest lock or the state
//     store's or the event log's; none of these is held while taking the
//     hub's lock.
//   - [Hub.Close] stops taking new sessions, tells every client "going away",
//     stops the reconciler and cancels the Bus subscriptions, and returns once
//     every session goroutine has ended (or its context ends).
//
// All exported methods of Hub are safe for concurrent use.
package bridge
