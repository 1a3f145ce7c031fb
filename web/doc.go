// Package web is motehub's HTTP surface: one chi router that serves the
// Clown.Talk WebSocket (/ws, /ws/{base...}), health (/healthz) and readiness
// (/readyz), and the page at /. Every error it answers is JSON:
// {"error": {"code": "...", "message": "..."}}.
//
// Concurrency: the handler returned by [New] is safe for concurrent use; it
// holds no state of its own beyond what it is given.
package web
