// Package web is motehub's HTTP surface: one chi router that serves the
// Clown.Talk WebSocket (/ws, /ws/{base...}, and Clown.Hub's spelling of it,
// /auth/clown-talk-server_{base}: clownhub.go), Server-Sent Events (/events,
// /events/{base...}), MQTT over WebSocket (/mqtt, the broker's handler, when
// given), the REST API (/api/publish, /api/state, /api/history, /api/poll,
// /api/me: who the request acts as, with what rights, logged in how),
// health (/healthz), readiness (/readyz), metrics (/metrics, for known users),
// the login page (/login, /logout), the dashboard (/ and /assets/) and the
// admin view (/admin, its API under /api/admin: admin.go).
// Every error it answers is JSON: {"error": {"code": "...", "message": "..."}}
// (httpx.WriteError); only a browser that asks for a page without
// credentials is sent to /login instead.
// Every request is checked for its Host (host.go, against DNS rebinding),
// then its Origin (origin.go), then its credentials (authn.go).
// No middleware buffers, compresses or times out a response, so streams flow.
//
// Concurrency: the handler returned by [New] is safe for concurrent use.
// Its state is the dashboard's login sessions (authn.go): at most 100,000,
// each for Config.SessionTTL, behind one mutex; a login that finds the table
// full drops the expired ones, and if none has expired, all of them (everyone
// logs in again rather than memory growing). It also counts refused
// credentials for /metrics (an atomic). Everything else is read-only after
// [New], or belongs to what it is given (the hub, the authorizer, the
// throttle).
package web
