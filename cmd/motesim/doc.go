// Command motesim runs simulated motes against an MQTT broker (by default the
// hub's, on 127.0.0.1:1883), so that the dashboard has something to show
// without hardware. See package internal/motesim for the topics, and
// `motesim --help` for the flags. SIGINT or SIGTERM stops it (exit 0); a
// second signal ends it the default way.
//
// Concurrency: main only parses flags and calls motesim.Run, which owns the
// motes' goroutines and returns once they have ended.
package main
