// Package httpx holds the small HTTP and network helpers that web, bridge
// and broker share: the JSON error body every HTTP error of the hub carries,
// and the host of a remote address (for per-address limits and checks).
// Standard library only, so that any package of the hub may import it.
//
// Concurrency: stateless; every function is safe for concurrent use.
package httpx
