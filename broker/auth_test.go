package broker

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// securedBroker starts a broker enforcing a users file in which alice
// (password "alice-secret") reads nodes/# and commands relays, ops may do
// everything including $SYS, and anonymous clients read public/#.
func securedBroker(t *testing.T, cfg Config) (*Embedded, *auth.Authorizer, *auth.Users) {
	t.Helper()
	users := testUsers(t, "read = [\"nodes/#\"]\nwrite = [\"nodes/+/relay/+/set\"]")
	authz := auth.New(users)
	cfg.Authorizer = authz
	return startTest(t, cfg), authz, users
}

// testUsers are the users of securedBroker, with aliceRights as alice's
// rules (a reload can change them).
func testUsers(t *testing.T, aliceRights string) *auth.Users {
	t.Helper()
	users, err := auth.Parse([]byte(`
[users.alice]
password = "` + hubtest.PasswordHash(t, "alice-secret") + `"
` + aliceRights + `
[users.ops]
password = "` + hubtest.PasswordHash(t, "ops-secret") + `"
readwrite = ["#", "$SYS/#"]
[users.anonymous]
read = ["public/#"]
`))
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestMQTTCredentials(t *testing.T) {
	e, _, _ := securedBroker(t, Config{})
	addr := e.Addr().String()
	for _, c := range []struct{ user, password, want string }{
		{"alice", "wrong", "not Authorized"},
		{"mallory", "alice-secret", "not Authorized"},
		{"anonymous", "", "not Authorized"}, // the name is reserved
	} {
		if _, err := hubtest.ConnectMQTTAs(addr, "c-"+c.user, c.user, c.password); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("CONNECT as %q/%q: %v, want %q", c.user, c.password, err, c.want)
		}
	}
	alice, err := hubtest.ConnectMQTTAs(addr, "alice-1", "alice", "alice-secret")
	if err != nil {
		t.Fatalf("alice with her password: %v", err)
	}
	alice.Disconnect(0)
	anon, err := hubtest.ConnectMQTTAs(addr, "anon-1", "", "")
	if err != nil {
		t.Fatalf("anonymous, which the file allows: %v", err)
	}
	anon.Disconnect(0)
	if s := e.Stats(); s.AuthFailures != 3 {
		t.Fatalf("stats %+v: want 3 authentication failures", s)
	}
}

func TestMQTTNoAnonymousEntryRefusesAnonymous(t *testing.T) {
	users, err := auth.Parse([]byte("[users.alice]\npassword = \"" + hubtest.PasswordHash(t, "alice-secret") + "\"\n"))
	if err != nil {
		t.Fatal(err)
	}
	e, err := Start(Config{Addr: "127.0.0.1:0", Authorizer: auth.New(users), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	e.Open()
	defer e.Close(context.Background())
	if _, err := hubtest.TryConnectMQTT(e.Addr().String(), "nobody"); err == nil {
		t.Fatal("a client without credentials got in, though the users file has no anonymous entry")
	}
}

// TestMQTTRights: what a user may publish reaches subscribers, what it may
// not does not; a wildcard subscription delivers only readable topics, and
// $SYS only to a user granted it.
func TestMQTTRights(t *testing.T) {
	e, _, _ := securedBroker(t, Config{})
	addr := e.Addr().String()
	ops, err := hubtest.ConnectMQTTAs(addr, "ops-1", "ops", "ops-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Disconnect(0)
	everything := hubtest.SubscribeMQTT(t, ops, "#", 1)

	alice, err := hubtest.ConnectMQTTAs(addr, "alice-1", "alice", "alice-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Disconnect(0)
	aliceSees := hubtest.SubscribeMQTT(t, alice, "#", 1) // allowed: it overlaps nodes/#

	// alice may not publish here: QoS 0 is dropped (an MQTT 3 client has no
	// way to hear of it), and nothing reaches anyone.
	if tok := alice.Publish("nodes/mote-1/led/-/state/set", 0, false, "true"); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	hubtest.PublishMQTT(t, alice, "nodes/mote-1/relay/r/set", 1, false, []byte(`{"state":true}`))
	if m := hubtest.Receive(t, everything, hubtest.Timeout, "alice's command"); m.Topic != "nodes/mote-1/relay/r/set" {
		t.Fatalf("ops saw %q first: the forbidden publish got through", m.Topic)
	}

	for _, topic := range []string{"other/secret", "public/news", "nodes/mote-1/asn"} {
		hubtest.PublishMQTT(t, ops, topic, 1, false, []byte("1"))
	}
	// paho hands messages over out of order (SetOrderMatters(false)): compare as a set.
	got := map[string]bool{}
	for range 2 {
		got[hubtest.Receive(t, aliceSees, hubtest.Timeout, "a message for alice").Topic] = true
	}
	if !got["nodes/mote-1/relay/r/set"] || !got["nodes/mote-1/asn"] {
		t.Fatalf("alice's '#' delivered %v, want her command and nodes/mote-1/asn (other/secret and public/news are not hers)", got)
	}
	hubtest.PublishMQTT(t, ops, "nodes/marker", 1, false, []byte("1"))
	if m := hubtest.Receive(t, aliceSees, hubtest.Timeout, "marker"); m.Topic != "nodes/marker" {
		t.Fatalf("after the marker alice got %q: a topic she may not read got through", m.Topic)
	}

	if tok := alice.Subscribe("other/#", 1, nil); !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	} else if code := tok.(interface{ Result() map[string]byte }).Result()["other/#"]; code != 0x80 {
		t.Fatalf("alice subscribing to other/#: SUBACK %#x, want 0x80", code)
	}

	sys := hubtest.SubscribeMQTT(t, ops, "$SYS/broker/uptime", 0)
	if err := e.Publish(t.Context(), bridge.Message{Topic: "$SYS/broker/uptime", Payload: []byte("5")}); err != nil {
		t.Fatal(err)
	}
	hubtest.Receive(t, sys, hubtest.Timeout, "$SYS for ops")
	if tok := alice.Subscribe("$SYS/#", 0, nil); tok.WaitTimeout(hubtest.Timeout) && tok.(interface{ Result() map[string]byte }).Result()["$SYS/#"] != 0x80 {
		t.Fatal("alice may not read $SYS: her '#' rule does not cover it")
	}
}

func TestMQTTThrottlesPasswordGuessing(t *testing.T) {
	e, _, _ := securedBroker(t, Config{Throttle: auth.NewThrottle(auth.ThrottleConfig{PerUser: 3})})
	addr := e.Addr().String()
	for range 3 {
		if _, err := hubtest.ConnectMQTTAs(addr, "guess", "alice", "guess"); err == nil {
			t.Fatal("a wrong password got in")
		}
	}
	if _, err := hubtest.ConnectMQTTAs(addr, "guess", "alice", "alice-secret"); err == nil {
		t.Fatal("after 3 failures within a minute the right password must wait too")
	}
}

func TestMQTTConnectionLimits(t *testing.T) {
	e, _, _ := securedBroker(t, Config{MaxConnectionsPerAddress: 2})
	addr := e.Addr().String()
	for i := range 2 {
		c, err := hubtest.ConnectMQTTAs(addr, "anon-"+string(rune('a'+i)), "", "")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect(0)
	}
	if _, err := hubtest.ConnectMQTTAs(addr, "anon-c", "", ""); err == nil || !strings.Contains(strings.ToLower(err.Error()), "server unavailable") {
		t.Fatalf("a third connection from one address: %v, want refused (server unavailable)", err)
	}
	if s := e.Stats(); s.ConnectionsRefused != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestMQTTMessageRate(t *testing.T) {
	e, _, _ := securedBroker(t, Config{MessageRate: 10})
	ops, err := hubtest.ConnectMQTTAs(e.Addr().String(), "flood", "ops", "ops-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Disconnect(0)
	for i := 0; i < 1000 && ops.IsConnected(); i++ {
		ops.Publish("flood", 0, false, "x").WaitTimeout(time.Second)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return !ops.IsConnected() }, "a client flooding at over 10 messages/s stayed connected")
	if s := e.Stats(); s.RateLimited == 0 {
		t.Fatalf("stats %+v: the disconnect is not counted", s)
	}
}

// TestRecheckDisconnectsRemovedUsers: after a reload that removes alice,
// her connection ends; ops, still there, keeps his.
func TestRecheckDisconnectsRemovedUsers(t *testing.T) {
	e, authz, users := securedBroker(t, Config{})
	addr := e.Addr().String()
	alice, err := hubtest.ConnectMQTTAs(addr, "alice-1", "alice", "alice-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Disconnect(0)
	ops, err := hubtest.ConnectMQTTAs(addr, "ops-1", "ops", "ops-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer ops.Disconnect(0)

	authz.Replace(users.Without("alice"))
	e.Recheck()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return !alice.IsConnected() }, "a removed user stayed connected")
	if !ops.IsConnected() {
		t.Fatal("a user who is still allowed was disconnected")
	}
}
