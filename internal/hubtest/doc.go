// Package hubtest holds what motehub's tests share: waiting for a condition
// with a deadline (Eventually, EventuallyNil, Receive), the rule for tests
// that need programs from outside the repository (RequireCommand), real MQTT
// (paho), WebSocket (gorilla) and SSE clients that clean up after
// themselves, a real Mosquitto, and headless Chromium with a page that runs
// MQTT.js (installed by `make test` from testdata/mqttjs).
//
// Concurrency: each helper belongs to the test that created it; the clients'
// internal goroutines end before the test's cleanup returns.
package hubtest
