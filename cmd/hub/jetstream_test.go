package main

import (
	"io"
	"slices"
	"strings"
	"testing"
)

// TestJetStreamOptions: --upstream-jetstream and --upstream-nats go
// together and with --upstream; the NATS URLs are comma-separated,
// repeatable, and an environment twin's list; a URL of another scheme is
// refused at start.
func TestJetStreamOptions(t *testing.T) {
	none := func(string) (string, bool) { return "", false }
	o, err := parseOptions([]string{"--upstream", "mqtt://b", "--upstream-jetstream", "DEVICES",
		"--upstream-nats", "nats://n1:4222,nats://n2:4222", "--upstream-nats", "nats://n3:4222"}, none, io.Discard)
	if err != nil || o.UpstreamJetStream != "DEVICES" || !slices.Equal(o.UpstreamNATS, []string{"nats://n1:4222", "nats://n2:4222", "nats://n3:4222"}) {
		t.Fatalf("stream %q, NATS %q, %v", o.UpstreamJetStream, o.UpstreamNATS, err)
	}
	env := func(k string) (string, bool) {
		v, ok := map[string]string{"HUB_UPSTREAM": "mqtt://b", "HUB_UPSTREAM_JETSTREAM": "S", "HUB_UPSTREAM_NATS": "nats://a,nats://b"}[k]
		return v, ok
	}
	if o, err := parseOptions(nil, env, io.Discard); err != nil || o.UpstreamJetStream != "S" || len(o.UpstreamNATS) != 2 {
		t.Errorf("from the environment: stream %q, NATS %q, %v", o.UpstreamJetStream, o.UpstreamNATS, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--upstream", "mqtt://b", "--upstream-jetstream", "S"}, "--upstream-nats"},
		{[]string{"--upstream", "mqtt://b", "--upstream-nats", "nats://n"}, "--upstream-jetstream"},
		{[]string{"--upstream-jetstream", "S", "--upstream-nats", "nats://n"}, "needs --upstream"},
	} {
		if _, err := parseOptions(c.args, none, io.Discard); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a refusal naming %s", c.args, err, c.want)
		}
	}
	err = run(t.Context(), []string{"--http", "127.0.0.1:0", "--upstream", "mqtt://127.0.0.1:1", "--upstream-jetstream", "S",
		"--upstream-nats", "mqtt://127.0.0.1:1"}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--upstream-jetstream") || !strings.Contains(err.Error(), "nats://") {
		t.Errorf("an mqtt:// URL for NATS: %v", err)
	}
}
