// Package auth decides who may do what, for every door of the hub: MQTT
// clients (through the broker's hook), WebSocket and SSE sessions, the REST
// API and MQTT over WebSocket all ask the same [Authorizer].
//
// Users live in a TOML file (see [Parse] for the format): a bcrypt hash of
// each password, API tokens stored as SHA-256 hashes, and per-user rules of
// topic filters with read, write or readwrite access. The entry named
// "anonymous", when present, is what clients without credentials may do.
// Everything not granted is denied; a rule "#" does not grant the '$' topics
// (MQTT's matching rules), so $SYS is readable only when a rule names it.
//
// Besides the file's users, the hub may add built-in users of its own
// ([Authorizer.AddBuiltIn]: the simulated motes of --demo), kept in memory
// across reloads; a file may not define their names.
//
// A [Throttle] slows password guessing for every door alike: it counts
// failures by address and user name, under a higher ceiling per address.
//
// An [Identity] is just a name: its rights are looked up in the users in
// force at each decision, so a reload (SIGHUP) changes what connected
// clients may do at once, and a removed user loses everything.
//
// Concurrency: Users is immutable once built; Authorizer and Throttle are
// safe for concurrent use.
package auth
