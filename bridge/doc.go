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
//   - The Bus callback ([Hub] subscribes with one per bus filter) never blocks:
//     under the hub's lock it assigns the message a sequence number and appends
//     it, by reference, to each matching client's bounded queue. It waits for no
//     client, no network and no other goroutine.
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
//     the clients' filters need, outside the hub's lock; a client's start
//     waits for them, bounded. [Hub.Resync] may be called from any goroutine.
//   - [Hub.Close] stops taking new sessions, tells every client "going away",
//     stops the reconciler and cancels the Bus subscriptions, and returns once
//     every session goroutine has ended (or its context ends).
//
// All exported methods of Hub are safe for concurrent use.
package bridge
