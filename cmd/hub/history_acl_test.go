package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/motehub/motehub/internal/hubtest"
)

// recordsPlant waits until the replica h records plant/boiler/pressure,
// published by device, and checks that it has no history of secret/code,
// published too but not readable upstream.
func recordsPlant(t *testing.T, h *runningHub, publish func(topic string, payload []byte)) {
	t.Helper()
	if status, _, body := get(t, "GET", "http://"+h.HTTP+"/readyz", nil, ""); status != 200 {
		t.Fatalf("/readyz: %d %s; want the replica ready", status, body)
	}
	var s seriesAnswer
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		publish("plant/boiler/pressure", []byte("1.5"))
		publish("secret/code", []byte("7"))
		status, _, body := historyOf(t, h, "", "", "topic=plant/boiler/pressure&from=-1h&resolution=raw")
		return status == 200 && json.Unmarshal([]byte(body), &s) == nil && len(s.Points) > 0
	}, "the replica never recorded plant/boiler/pressure")
	if status, _, body := historyOf(t, h, "", "", "topic=secret/code&from=-1h"); status != 404 {
		t.Errorf("secret/code, which the upstream user may not read: %d %s, want 404", status, body)
	}
}

// TestReplicaHistoryTopicTheUpstreamRefuses: a replica whose upstream
// user may not read one of its --history-topics starts, is ready, and
// records the topics it may read.
//
// Mosquitto (2.0, an ACL file) grants such a subscription and drops its
// messages: there is nothing the replica can see, or say. A broker that
// refuses it in its SUBACK (a motehub hub with a users file, here) makes
// the replica say so once at WARN (TestRefusedSubscriptionSaidOnce in
// package bridge: not at each of its retries).
func TestReplicaHistoryTopicTheUpstreamRefuses(t *testing.T) {
	t.Run("Mosquitto", func(t *testing.T) {
		acl := filepath.Join(t.TempDir(), "acl")
		// Anonymous clients (the replica, the device) may read and write
		// plant/#, and only write secret/#.
		if err := os.WriteFile(acl, []byte("topic readwrite plant/#\ntopic write secret/#\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		m := hubtest.StartMosquitto(t, "acl_file "+acl)
		h := startReplica(t, m, "--data", t.TempDir(), "--history-topics", "plant/#", "--history-topics", "secret/#", "--data-sync-interval", "50ms")
		device := hubtest.ConnectMQTT(t, m.Addr(), "acl-sensor")
		defer device.Disconnect(0)
		recordsPlant(t, h, func(topic string, payload []byte) { hubtest.PublishMQTT(t, device, topic, 1, false, payload) })
	})

	t.Run("RefusedInTheSUBACK", func(t *testing.T) {
		users := filepath.Join(t.TempDir(), "users.toml")
		content := fmt.Sprintf("[users.ops]\npassword = %q\nreadwrite = [\"#\"]\n[users.replica]\npassword = %q\nread = [\"plant/#\"]\n",
			hubtest.PasswordHash(t, opsPassword), hubtest.PasswordHash(t, viewerPassword))
		if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		upstream := startHub(t, "--users", users)
		upURL := "mqtt://replica:" + url.QueryEscape(viewerPassword) + "@" + upstream.MQTT
		h := startHub(t, "--upstream", upURL, "--upstream-linger", linger, "--data", t.TempDir(),
			"--history-topics", "plant/#", "--history-topics", "secret/#", "--data-sync-interval", "50ms")
		device, err := hubtest.ConnectMQTTAs(upstream.MQTT, "acl-sensor", "ops", opsPassword)
		if err != nil {
			t.Fatal(err)
		}
		defer device.Disconnect(0)
		recordsPlant(t, h, func(topic string, payload []byte) { hubtest.PublishMQTT(t, device, topic, 1, false, payload) })
		var warns []string
		for _, line := range strings.Split(h.Log.String(), "\n") {
			if strings.Contains(line, "level=WARN") && strings.Contains(line, "secret/#") {
				warns = append(warns, line)
			}
		}
		if len(warns) != 1 {
			t.Errorf("the refusal of secret/# said %d times at WARN, want once:\n%s", len(warns), strings.Join(warns, "\n"))
		}
		t.Log(warns)
	})
}
