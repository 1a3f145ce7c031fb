// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co

package mqtt

import "github.com/mochi-mqtt/server/v2/packets"

// onFreshStack runs f on a goroutine of its own and waits for it.
//
// A client's reader goroutine lives as long as its connection, and the
// runtime grows a goroutine's stack to the deepest call it ever made but
// shrinks it only at a garbage collection, by half at each. Handling a
// CONNECT or a SUBSCRIBE (hooks, session take-up, retained messages,
// packets passed by value) grows a stack to 16 or 32 KB; an idle hub may
// not collect for two minutes, so after a burst of connects every idle
// device kept that much. Handled on a goroutine that ends with it, the
// deep call's stack goes back to the runtime's stack pool (the next
// connect reuses it), and the reader keeps the few KB its wait needs.
//
// It costs one goroutine and a channel per call: it is for the packets a
// device sends once or rarely (see handledOnFreshStack), not for PUBLISH.
func onFreshStack(f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	return <-done
}

// handledOnFreshStack reports whether a packet of type t is read and
// handled on a fresh stack (onFreshStack): the packets that come once or
// rarely in a connection and whose handling goes deep.
func handledOnFreshStack(t byte) bool {
	switch t {
	case packets.Subscribe, packets.Unsubscribe, packets.Auth:
		return true
	}
	return false
}
