// Package web is motehub's HTTP surface: one chi router that serves the
// Clown.Talk WebSocket (/ws, /ws/{base...}), Server-Sent Events (/events,
// /events/{base...}), the REST API (/api/publish, /api/state, /api/history,
// /api/poll), health (/healthz) and readiness (/readyz), and the page at /.
// Every error it answers is JSON: {"error": {"code": "...", "message": "..."}}.
// Every request is checked for its Host (host.go, against DNS rebinding),
// then its Origin (origin.go), then its credentials (authn.go).
// No middleware buffers, compresses or times out a response, so streams flow.
//
// Concurrency: the handler returned by [New] is safe for concurrent use; it
// holds no state of its own beyond what it is given.
package web
