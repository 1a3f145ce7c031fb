//go:build tools

// Package tool is a module of its own that pins nats-server for the tests
// (internal/natstest builds it from here), so that motehub's go.mod never
// carries the server. The build tag keeps this file out of every build; its
// import keeps the requirement in go.mod.
package tool

import _ "github.com/nats-io/nats-server/v2"
