package motesim

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/internal/hubtest"
)

// seen is what a subscriber saw of one mote.
type seen struct {
	boots  []string
	asns   []int64
	temps  []int // tenths of °C, from live messages
	pirs   []int64
	relays map[string]string
	led    string
}

var temperatureRE = regexp.MustCompile(`^\[(\d+)\.(\d),"°C"\]$`)

// TestTopicsAndPayloads: two motes publish boot, ASN, temperature, PIR and
// the states of their relays and LED, on the documented topics, with the
// documented payloads; the ASN grows and the temperature walks by at most
// 0.1 °C per reading.
func TestTopicsAndPayloads(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "127.0.0.1:0")
	addr := b.Addr().String()
	sub := connectOrdered(t, addr, "watcher")
	ch := hubtest.SubscribeMQTT(t, sub, "nodes/#", 1)
	log, _ := newLogs(t)
	startMotes(t, fastConfig(addr, 2, log))

	motes := map[string]*seen{"mote-1": {relays: map[string]string{}}, "mote-2": {relays: map[string]string{}}}
	complete := func(s *seen) bool {
		return len(s.boots) > 0 && len(s.asns) >= 3 && s.asns[len(s.asns)-1] > s.asns[0] &&
			len(s.temps) >= 5 && len(s.pirs) >= 2 && s.pirs[len(s.pirs)-1] > s.pirs[0] &&
			len(s.relays) == 2 && s.led != ""
	}
	receiveUntil(t, ch, hubtest.Timeout, "every kind of message from both motes", func(m hubtest.Message) bool {
		name, rel, _ := moteOf(m.Topic)
		s := motes[name]
		if s == nil {
			t.Fatalf("message on %q: not a topic of mote-1 or mote-2", m.Topic)
		}
		switch {
		case rel == "boot":
			var boot map[string]any
			if err := json.Unmarshal([]byte(m.Payload), &boot); err != nil || len(boot) != 2 || boot["fw"] != "1.0.0" || boot["reason"] != "power-on" {
				t.Fatalf("%s: %s, want {\"fw\": \"1.0.0\", \"reason\": \"power-on\"}", m.Topic, m.Payload)
			}
			if m.Retain {
				t.Errorf("%s is retained", m.Topic)
			}
			s.boots = append(s.boots, m.Payload)
		case rel == "asn":
			asn, err := strconv.ParseInt(m.Payload, 10, 64)
			if err != nil || asn < 0 {
				t.Fatalf("%s: %q is not a JSON integer", m.Topic, m.Payload)
			}
			// Two reports may fall in the same 10 ms slot; the ASN never goes back.
			if n := len(s.asns); n > 0 && asn < s.asns[n-1] {
				t.Fatalf("%s went back from %d to %d", m.Topic, s.asns[n-1], asn)
			}
			s.asns = append(s.asns, asn)
		case rel == "thermometer/0:1/temperature":
			parts := temperatureRE.FindStringSubmatch(m.Payload)
			var value []any
			if parts == nil || json.Unmarshal([]byte(m.Payload), &value) != nil || len(value) != 2 || value[1] != "°C" {
				t.Fatalf("%s: %q, want [21.5, \"°C\"] (one decimal)", m.Topic, m.Payload)
			}
			tenths, _ := strconv.Atoi(parts[1] + parts[2])
			if tenths < 180 || tenths > 260 {
				t.Fatalf("%s: %s °C is not a plausible indoor temperature", m.Topic, m.Payload)
			}
			if m.Retain { // a replay of the last reading, not the next one
				break
			}
			if n := len(s.temps); n > 0 && (tenths-s.temps[n-1] > 1 || s.temps[n-1]-tenths > 1) {
				t.Fatalf("%s jumped from %d to %d tenths of °C", m.Topic, s.temps[n-1], tenths)
			}
			s.temps = append(s.temps, tenths)
		case rel == "pir/-/event-count":
			count, err := strconv.ParseInt(m.Payload, 10, 64)
			if err != nil || count < 0 {
				t.Fatalf("%s: %q is not a JSON integer", m.Topic, m.Payload)
			}
			if n := len(s.pirs); n > 0 && count < s.pirs[n-1] {
				t.Fatalf("%s went back from %d to %d", m.Topic, s.pirs[n-1], count)
			}
			s.pirs = append(s.pirs, count)
		case rel == "relay/i2c0-3b" || rel == "relay/i2c0-3c":
			if m.Payload != `{"state":false}` {
				t.Fatalf("%s: %s, want {\"state\":false}", m.Topic, m.Payload)
			}
			s.relays[rel] = m.Payload
		case rel == "led/-/state":
			if m.Payload != "false" {
				t.Fatalf("%s: %s, want false", m.Topic, m.Payload)
			}
			s.led = m.Payload
		default:
			t.Fatalf("unexpected topic %q", m.Topic)
		}
		return complete(motes["mote-1"]) && complete(motes["mote-2"])
	})
	if motes["mote-1"].asns[0] == motes["mote-2"].asns[0] {
		t.Errorf("both motes started at ASN %d, want different offsets", motes["mote-1"].asns[0])
	}
	for name, s := range motes {
		if len(s.boots) != 1 {
			t.Errorf("%s booted %d times, want once", name, len(s.boots))
		}
	}
}

// isState reports whether topic is a relay's or an LED's state.
func isState(topic string) bool {
	_, rel, _ := moteOf(topic)
	return strings.HasPrefix(rel, "relay/") && !strings.HasSuffix(rel, "/set") || rel == "led/-/state"
}

// nextState is the next relay or LED state on ch, skipping telemetry.
func nextState(t *testing.T, ch <-chan hubtest.Message, what string) hubtest.Message {
	t.Helper()
	var state hubtest.Message
	receiveUntil(t, ch, hubtest.Timeout, what, func(m hubtest.Message) bool {
		state = m
		return isState(m.Topic)
	})
	return state
}

// waitStates waits until the states of n motes (two relays and an LED each)
// have arrived on ch, and returns them by topic.
func waitStates(t *testing.T, ch <-chan hubtest.Message, n int) map[string]hubtest.Message {
	t.Helper()
	states := map[string]hubtest.Message{}
	receiveUntil(t, ch, hubtest.Timeout, "the states of every mote", func(m hubtest.Message) bool {
		if isState(m.Topic) {
			states[m.Topic] = m
		}
		return len(states) == 3*n
	})
	return states
}

// TestCommandsAreEchoed: a relay and the LED obey their .../set topics and
// echo their state, even when it did not change; invalid commands are ignored
// (logged at debug) and the mote goes on obeying.
func TestCommandsAreEchoed(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "127.0.0.1:0")
	addr := b.Addr().String()
	c := connectOrdered(t, addr, "commander")
	ch := hubtest.SubscribeMQTT(t, c, "nodes/#", 1)
	log, logs := newLogs(t)
	startMotes(t, fastConfig(addr, 2, log))
	waitStates(t, ch, 2) // published once the motes' subscriptions are acknowledged

	command := func(topic, payload, wantTopic, wantPayload string) {
		t.Helper()
		hubtest.PublishMQTT(t, c, topic, 1, false, []byte(payload))
		got := nextState(t, ch, "the echo of "+payload+" on "+topic)
		if got.Topic != wantTopic || got.Payload != wantPayload {
			t.Fatalf("after %s on %s: %s %s, want %s %s", payload, topic, got.Topic, got.Payload, wantTopic, wantPayload)
		}
	}
	relay, relaySet := moteTopic(1, "relay/i2c0-3b"), moteTopic(1, "relay/i2c0-3b/set")
	led, ledSet := moteTopic(1, "led/-/state"), moteTopic(1, "led/-/state/set")
	command(relaySet, `{"state": true}`, relay, `{"state":true}`)
	command(relaySet, `{"state": true}`, relay, `{"state":true}`) // unchanged, echoed all the same
	command(ledSet, `true`, led, `true`)
	command(moteTopic(2, "relay/i2c0-3c/set"), `{"state": true}`, moteTopic(2, "relay/i2c0-3c"), `{"state":true}`)

	invalid := []struct{ topic, payload string }{
		{relaySet, `{"state": "on"}`},
		{relaySet, `{"state": null}`},
		{relaySet, `{"on": true}`},
		{relaySet, `[true]`},
		{relaySet, `on`},
		{relaySet, ``},
		{ledSet, `"true"`},
		{ledSet, `1`},
		{ledSet, `null`},
		{ledSet, `{"state": true}`},
		{moteTopic(1, "relay/i2c0-3d/set"), `{"state": true}`},
	}
	for _, bad := range invalid {
		hubtest.PublishMQTT(t, c, bad.topic, 1, false, []byte(bad.payload))
	}
	// Had any of them been obeyed, its echo (true) would come before these.
	command(relaySet, `{"state": false}`, relay, `{"state":false}`)
	command(ledSet, `false`, led, `false`)
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return logs.count(slog.LevelDebug, "command ignored", "mote", "mote-1") == len(invalid)
	}, "%d invalid commands, logged as ignored: %d", len(invalid), logs.count(slog.LevelDebug, "command ignored"))
	if got := logs.levels("command ignored"); len(got) != 1 || got[slog.LevelDebug] == 0 {
		t.Errorf("ignored commands logged at %v, want debug only", got)
	}
}

// TestStatesAreRetained: a subscriber that comes after the motes have started
// gets every relay's and LED's state at once, as retained messages, with the
// changes commands made.
func TestStatesAreRetained(t *testing.T) {
	t.Parallel()
	b := startBroker(t, "127.0.0.1:0")
	addr := b.Addr().String()
	watcher := hubtest.ConnectMQTT(t, addr, "watcher")
	ch := hubtest.SubscribeMQTT(t, watcher, "nodes/#", 1)
	log, _ := newLogs(t)
	cfg := fastConfig(addr, 2, log)
	// No retained telemetry while the late client subscribes: mochi 2.7.9
	// reads a retained topic's path without the lock that storing one takes
	// (mochi-mqtt/server#200), which the race detector reports.
	cfg.TemperatureInterval, cfg.PIRInterval = time.Hour, time.Hour
	startMotes(t, cfg)
	waitStates(t, ch, 2)
	hubtest.PublishMQTT(t, watcher, moteTopic(2, "relay/i2c0-3c/set"), 1, false, []byte(`{"state": true}`))
	hubtest.PublishMQTT(t, watcher, moteTopic(1, "led/-/state/set"), 1, false, []byte(`true`))
	var echoes int
	receiveUntil(t, ch, hubtest.Timeout, "the echoes", func(m hubtest.Message) bool {
		if m.Topic == moteTopic(2, "relay/i2c0-3c") && m.Payload == `{"state":true}` || m.Topic == moteTopic(1, "led/-/state") && m.Payload == "true" {
			echoes++
		}
		return echoes == 2
	})

	// One subscription: mochi 2.7.9 refuses a client's second SUBSCRIBE while
	// the retained QoS 1 messages of its first are unacknowledged (it checks
	// the client's packet id against its own outbound ones).
	late := hubtest.ConnectMQTT(t, addr, "late")
	all := hubtest.SubscribeMQTT(t, late, "nodes/#", 1)
	want := map[string]string{
		moteTopic(1, "relay/i2c0-3b"): `{"state":false}`,
		moteTopic(1, "relay/i2c0-3c"): `{"state":false}`,
		moteTopic(1, "led/-/state"):   `true`,
		moteTopic(2, "relay/i2c0-3b"): `{"state":false}`,
		moteTopic(2, "relay/i2c0-3c"): `{"state":true}`,
		moteTopic(2, "led/-/state"):   `false`,
	}
	got := map[string]string{}
	receiveUntil(t, all, hubtest.Timeout, "the retained states", func(m hubtest.Message) bool {
		if !isState(m.Topic) {
			return false // telemetry, retained or live
		}
		if !m.Retain {
			t.Errorf("%s %s is not retained", m.Topic, m.Payload)
		}
		got[m.Topic] = m.Payload
		return len(got) == len(want)
	})
	for topic, payload := range want {
		if got[topic] != payload {
			t.Errorf("late subscriber got %s %q, want %q", topic, got[topic], payload)
		}
	}
}

// TestReconnectsAfterBrokerRestart: when the broker goes away and a new one
// starts on the same address, the motes reconnect by themselves, boot with
// reason "reconnect", resubscribe, publish the states they kept, and obey
// commands again.
func TestReconnectsAfterBrokerRestart(t *testing.T) {
	first := startBroker(t, "127.0.0.1:0")
	addr := first.Addr().String()
	px := startProxy(t, addr)
	c := hubtest.ConnectMQTT(t, addr, "before")
	ch := hubtest.SubscribeMQTT(t, c, "nodes/#", 1)
	log, logs := newLogs(t)
	startMotes(t, fastConfig(px.addr(), 2, log))
	waitStates(t, ch, 2)
	hubtest.PublishMQTT(t, c, moteTopic(1, "relay/i2c0-3b/set"), 1, false, []byte(`{"state": true}`))
	if m := nextState(t, ch, "the echo"); m.Payload != `{"state":true}` {
		t.Fatalf("echo %s %s", m.Topic, m.Payload)
	}

	// The broker goes away. The proxy keeps the motes out until this test's
	// subscriber is on the new broker: boot is not retained.
	px.shut.Store(true)
	if err := first.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool {
		return logs.count(slog.LevelInfo, "disconnected", "mote", "mote-1") == 1 &&
			logs.count(slog.LevelInfo, "disconnected", "mote", "mote-2") == 1
	}, "the motes did not log the lost connection at info")
	second := startBroker(t, addr)
	c2 := hubtest.ConnectMQTT(t, second.Addr().String(), "after")
	ch2 := hubtest.SubscribeMQTT(t, c2, "nodes/#", 1)
	px.shut.Store(false)

	// Both motes boot again, then publish the states they kept.
	boots, states := map[string]string{}, map[string]string{}
	receiveUntil(t, ch2, hubtest.Timeout, "both motes to boot again and publish their states", func(m hubtest.Message) bool {
		if name, rel, _ := moteOf(m.Topic); rel == "boot" {
			boots[name] = m.Payload
		} else if isState(m.Topic) {
			states[m.Topic] = m.Payload
		}
		return len(boots) == 2 && len(states) == 6
	})
	for name, payload := range boots {
		if payload != `{"fw":"1.0.0","reason":"reconnect"}` {
			t.Errorf("%s booted with %s, want reason reconnect", name, payload)
		}
	}
	if got := states[moteTopic(1, "relay/i2c0-3b")]; got != `{"state":true}` {
		t.Errorf("after reconnecting mote-1's relay is %s, want {\"state\":true}", got)
	}
	hubtest.PublishMQTT(t, c2, moteTopic(1, "relay/i2c0-3b/set"), 1, false, []byte(`{"state": false}`))
	if m := nextState(t, ch2, "the echo after reconnecting"); m.Topic != moteTopic(1, "relay/i2c0-3b") || m.Payload != `{"state":false}` {
		t.Fatalf("after reconnecting: %s %s, want the relay's echo {\"state\":false}", m.Topic, m.Payload)
	}
	for _, name := range []string{"mote-1", "mote-2"} {
		if n := logs.count(slog.LevelInfo, "connected", "mote", name); n != 2 {
			t.Errorf("%s logged %d connects at info, want 2", name, n)
		}
	}
}

// TestRunStopsPromptly: Run returns soon after its context ends, leaving no
// goroutine behind, whether the motes are connected, lost their broker, or
// never reached one.
func TestRunStopsPromptly(t *testing.T) {
	bothLogged := func(t *testing.T, logs *logs, msg string) {
		t.Helper()
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			return logs.count(slog.LevelInfo, msg, "mote", "mote-1") >= 1 && logs.count(slog.LevelInfo, msg, "mote", "mote-2") >= 1
		}, "both motes to log %q at info", msg)
	}
	stopClean := func(t *testing.T, r *motes, before goleak.Option) {
		t.Helper()
		took := r.stop(t)
		t.Logf("Run returned %v after its context ended", took)
		goleak.VerifyNone(t, before)
	}

	t.Run("connected", func(t *testing.T) {
		b := startBroker(t, "127.0.0.1:0")
		before := goleak.IgnoreCurrent()
		log, logs := newLogs(t)
		cfg := fastConfig(b.Addr().String(), 2, log)
		cfg.NoDevices = false // and every device of another convention
		r := startMotes(t, cfg)
		bothLogged(t, logs, "connected")
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			return logs.count(slog.LevelDebug, "announced") == len(DeviceNames())
		}, "every device to announce itself")
		stopClean(t, r, before)
		if n := logs.count(slog.LevelInfo, "disconnected", "reason", "stopping"); n != 2+len(DeviceNames()) {
			t.Errorf("%d motes and devices logged their disconnect at info, want %d", n, 2+len(DeviceNames()))
		}
	})
	t.Run("broker-gone", func(t *testing.T) {
		b := startBroker(t, "127.0.0.1:0")
		before := goleak.IgnoreCurrent()
		log, logs := newLogs(t)
		r := startMotes(t, fastConfig(b.Addr().String(), 2, log))
		bothLogged(t, logs, "connected")
		if err := b.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		bothLogged(t, logs, "connect failed, retrying")
		stopClean(t, r, before)
	})
	t.Run("never-reachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		_ = ln.Close() // nothing listens there now
		before := goleak.IgnoreCurrent()
		log, logs := newLogs(t)
		r := startMotes(t, fastConfig(addr, 2, log))
		bothLogged(t, logs, "connect failed, retrying")
		hubtest.Eventually(t, hubtest.Timeout, func() bool {
			return logs.count(slog.LevelDebug, "connect failed, retrying", "mote", "mote-1") >= 2
		}, "mote-1 to keep trying")
		stopClean(t, r, before)
	})
}

// TestRunRejectsBadConfig: a Config Run cannot run is an error at once.
func TestRunRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{
		{Motes: -1},
		{Prefix: "nodes/#"},
		{Prefix: "nodes//x"},
		{Prefix: "a/+/b"},
		{Broker: "http://127.0.0.1:1883"},
		{Broker: "tcp://127.0.0.1"},
		{Broker: "tcp://[::1"},
		{ASNInterval: -1},
		{TemperatureInterval: 1},
		{PIRInterval: -5},
		{MaxReconnectInterval: -1},
		{ReportInterval: -1},
		{Devices: []string{"hue"}},
		{Devices: []string{"homie", "homie"}},
		{Devices: []string{"homie"}, NoDevices: true},
	} {
		cfg.Logger = slog.New(slog.DiscardHandler)
		err := Run(t.Context(), cfg) // the test would hang if Run started motes
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("Run(%+v) = %v, want ErrBadConfig", cfg, err)
		}
	}
}

// TestCredentials: the motes log in with Config's user name and password,
// to a broker that admits nobody without them; the log names the user and
// never the password.
func TestCredentials(t *testing.T) {
	t.Parallel()
	addr := startBrokerWithUsers(t, `
[users.motes]
password = "`+hubtest.PasswordHash(t, "motes-secret")+`"
readwrite = ["nodes/#"]
[users.watcher]
password = "`+hubtest.PasswordHash(t, "watcher-secret")+`"
read = ["#"]
`)
	watcher, err := hubtest.ConnectMQTTAs(addr, "watcher", "watcher", "watcher-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Disconnect(0)
	boots := hubtest.SubscribeMQTT(t, watcher, "nodes/+/boot", 1)

	log, logs := newLogs(t)
	cfg := fastConfig(addr, 1, log)
	cfg.Username, cfg.Password = "motes", "motes-secret"
	m := startMotes(t, cfg)
	if got := hubtest.Receive(t, boots, hubtest.Timeout, "mote-1's boot"); got.Topic != "nodes/mote-1/boot" {
		t.Fatalf("first boot on %q", got.Topic)
	}
	m.stop(t)
	if logs.count(slog.LevelInfo, "starting motes", "user", "motes") != 1 {
		t.Error(`no "starting motes" line naming the user`)
	}
	logs.mu.Lock()
	defer logs.mu.Unlock()
	for _, r := range logs.records {
		for k, v := range r.attrs {
			if strings.Contains(v, "motes-secret") {
				t.Errorf("the password in the log: %s %s=%s", r.msg, k, v)
			}
		}
	}
}
