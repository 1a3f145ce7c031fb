package broker

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// The attacks and failures of "The MQTT side you can trust", each through
// real clients: paho, a bare MQTT 3.1.1 client (mqttConn) where paho hides
// what the test needs, and mosquitto_sub.

func withWill(topic string, retain bool) func(*paho.ClientOptions) {
	return func(o *paho.ClientOptions) { o.SetBinaryWill(topic, []byte("open"), 1, retain) }
}

// TestWillToATopicTheUserMayNotWriteIsRefused: a Will is a publish made
// later, on the client's behalf; a CONNECT whose Will names a topic its user
// may not publish to is refused as not authorized.
func TestWillToATopicTheUserMayNotWriteIsRefused(t *testing.T) {
	e, _, _ := securedBroker(t, Config{})
	url := "tcp://" + e.Addr().String()
	for _, c := range []struct{ user, password, topic string }{
		{"alice", "alice-secret", "relay/door/set"},  // alice reads nodes/# and commands nodes' relays only
		{"alice", "alice-secret", "nodes/a/relay/1"}, // readable is not writable
		{"", "", "public/notice"},                    // anonymous may read public/#, not write it
	} {
		_, err := hubtest.ConnectMQTTWith(url, "will-"+c.user, c.user, c.password, withWill(c.topic, true))
		if err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("%q with a Will on %q: %v, want refused as not authorized", c.user, c.topic, err)
		}
	}
	if s := e.Stats(); s.WillsRefused != 3 {
		t.Errorf("%d Wills refused, want 3", s.WillsRefused)
	}
	// No user may leave a Will on a filter or on the server's topics, whatever
	// the rules say: ops may write "#" and "$SYS/#". (3.1.1 has no code for it:
	// the connection closes without a CONNACK.)
	for _, topic := range []string{"nodes/+/relay/1/set", "nodes/#", "$SYS/broker/clients/connected"} {
		if _, err := hubtest.ConnectMQTTWith(url, "will-bad", "ops", "ops-secret", withWill(topic, true)); err == nil {
			t.Errorf("a Will on %q was accepted", topic)
		}
	}
	if s := e.Stats(); s.WillsRefused != 6 {
		t.Errorf("%d Wills refused, want 6", s.WillsRefused)
	}
	ok, err := hubtest.ConnectMQTTWith(url, "will-ok", "alice", "alice-secret", withWill("nodes/a/relay/1/set", true))
	if err != nil {
		t.Fatalf("a Will alice may publish: %v", err)
	}
	ok.Disconnect(0)
}

// TestWillCheckedAgainWhenSent: alice's Will was allowed when she connected;
// her rights change (a reload), then her connection drops: the Will is not
// published, nor retained. With her rights intact, the same drop publishes it.
func TestWillCheckedAgainWhenSent(t *testing.T) {
	for _, revoke := range []bool{false, true} {
		t.Run(fmt.Sprintf("revoked=%v", revoke), func(t *testing.T) {
			e, authz, _ := securedBroker(t, Config{})
			seen, _ := subscribe(t, e, "nodes/#") // the hub's own subscription watches

			will := "nodes/a/relay/1/set"
			alice, connack := dialMQTTConnWith(t, e.Addr().String(), packets.ConnectParams{
				ClientIdentifier: "alice-will", Clean: true, Username: []byte("alice"), Password: []byte("alice-secret"),
				WillFlag: true, WillTopic: will, WillPayload: []byte("open"), WillQos: 1, WillRetain: true,
			})
			if connack.ReasonCode != 0 {
				t.Fatalf("alice's CONNECT: %#x", connack.ReasonCode)
			}
			if revoke {
				if err := authz.Replace(testUsers(t, `read = ["nodes/#"]`)); err != nil {
					t.Fatal(err)
				}
			}
			before := e.Stats().Connections["mqtt"]
			_ = alice.conn.Close() // dropped without DISCONNECT: the Will is due
			hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] < before },
				"the broker did not notice the dropped connection")

			retained, _ := subscribe(t, e, will) // replays what is retained there
			published := len(seen.got()) > 0
			if revoke && (published || len(retained.got()) > 0) {
				t.Fatalf("the Will of a user who may no longer publish there went out: seen %v, retained %v", seen.got(), retained.got())
			}
			if !revoke && (!published || len(retained.got()) != 1) {
				t.Fatalf("the Will of a user who may publish there: seen %v, retained %v", seen.got(), retained.got())
			}
		})
	}
}

// TestSessionOfAnotherUserIsNotTakenOver: a session belongs to the user who
// made it. alice, using ops's client id, is refused, whether ops is online
// (he is not kicked off) or away (his queued messages stay his).
func TestSessionOfAnotherUserIsNotTakenOver(t *testing.T) {
	e, _, _ := securedBroker(t, Config{})
	addr := e.Addr().String()
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	ops, err := hubtest.ConnectMQTTWith("tcp://"+addr, "ops-device", "ops", "ops-secret", persistent)
	if err != nil {
		t.Fatal(err)
	}
	hubtest.SubscribeMQTT(t, ops, "nodes/secret", 1)

	for _, clean := range []bool{true, false} {
		_, err := hubtest.ConnectMQTTWith("tcp://"+addr, "ops-device", "alice", "alice-secret",
			func(o *paho.ClientOptions) { o.SetCleanSession(clean) })
		if err == nil || !strings.Contains(err.Error(), "identifier rejected") {
			t.Fatalf("alice with ops's client id (clean %v) while ops is online: %v, want identifier rejected", clean, err)
		}
	}
	if !ops.IsConnected() {
		t.Fatal("ops was kicked off by another user's CONNECT with his client id")
	}
	ops.Disconnect(100)

	publisher, err := hubtest.ConnectMQTTAs(addr, "publisher", "ops", "ops-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer publisher.Disconnect(0)
	hubtest.PublishMQTT(t, publisher, "nodes/secret", 1, false, []byte("for ops only"))
	if _, err := hubtest.ConnectMQTTWith("tcp://"+addr, "ops-device", "alice", "alice-secret", persistent); err == nil {
		t.Fatal("alice resumed ops's session")
	}

	got := make(chan string, 10)
	back, err := hubtest.ConnectMQTTWith("tcp://"+addr, "ops-device", "ops", "ops-secret", func(o *paho.ClientOptions) {
		persistent(o)
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer back.Disconnect(0)
	if m := hubtest.Receive(t, got, hubtest.Timeout, "ops's queued message"); m != "for ops only" {
		t.Fatalf("ops got %q", m)
	}
	if s := e.Stats(); s.ClientIDsRefused != 3 {
		t.Errorf("%d client ids refused, want 3", s.ClientIDsRefused)
	}
}

// TestResumedSessionRecheckedAgainstRights: alice's session holds a
// subscription and a queued message on nodes/; a reload takes her read right
// on nodes/ away; when she resumes, neither is hers any more.
func TestResumedSessionRecheckedAgainstRights(t *testing.T) {
	e, authz, _ := securedBroker(t, Config{})
	addr := e.Addr().String()
	login := packets.ConnectParams{ClientIdentifier: "alice-dev", Username: []byte("alice"), Password: []byte("alice-secret")}
	alice, _ := dialMQTTConnWith(t, addr, login)
	alice.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "nodes/#", Qos: 1}}})
	if pk := alice.read(); pk.FixedHeader.Type != packets.Suback || pk.ReasonCodes[0] != 1 {
		t.Fatalf("subscribing: %s", brief(pk))
	}
	alice.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = alice.conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "alice stayed connected")

	publisher, err := hubtest.ConnectMQTTAs(addr, "publisher", "ops", "ops-secret")
	if err != nil {
		t.Fatal(err)
	}
	defer publisher.Disconnect(0)
	hubtest.PublishMQTT(t, publisher, "nodes/a/temperature", 1, false, []byte("21"))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Inflight == 1 }, "the message was not queued for alice")

	if err := authz.Replace(testUsers(t, `read = ["lab/#"]`)); err != nil {
		t.Fatal(err)
	}
	alice, connack := dialMQTTConnWith(t, addr, login)
	if !connack.SessionPresent {
		t.Fatal("alice's session is gone: nothing left to check")
	}
	alice.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 2,
		Filters: packets.Subscriptions{{Filter: "lab/#", Qos: 1}}})
	for pk := alice.read(); pk.FixedHeader.Type != packets.Suback; pk = alice.read() {
		t.Fatalf("alice got %s (%q) before her SUBACK: resent from her session", brief(pk), pk.TopicName)
	}
	hubtest.PublishMQTT(t, publisher, "nodes/a/temperature", 1, false, []byte("22")) // nor does she get nodes/ now
	hubtest.PublishMQTT(t, publisher, "lab/marker", 1, false, []byte("after"))
	if pk := alice.read(); pk.FixedHeader.Type != packets.Publish || pk.TopicName != "lab/marker" {
		t.Fatalf("alice got %s (%q), want lab/marker", brief(pk), pk.TopicName)
	}
	s := e.Stats()
	if s.QueuedDropped != 1 || s.SubscriptionsDropped != 1 {
		t.Fatalf("dropped %d queued messages and %d subscriptions, want 1 and 1", s.QueuedDropped, s.SubscriptionsDropped)
	}
}

// decimalBytes is how fmt prints a []byte inside a struct: "[112 52 ...]".
func decimalBytes(s string) string {
	parts := make([]string, len(s))
	for i := range len(s) {
		parts[i] = strconv.Itoa(int(s[i]))
	}
	return strings.Join(parts, " ")
}

// TestNoCredentialsOrPayloadsInLogs: with every log at debug, a second
// CONNECT on one connection (mochi logs the packet whole) and a refused
// 900 KB publish (likewise) leave neither the password nor the payload in
// the log, and the log stays small.
func TestNoCredentialsOrPayloadsInLogs(t *testing.T) {
	var logs hubtest.LogBuffer
	e, _, _ := securedBroker(t, Config{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	addr := e.Addr().String()

	const password = "p4ssw0rd-of-alice"
	second, connack := dialMQTTConnWith(t, addr, packets.ConnectParams{ClientIdentifier: "twice",
		Username: []byte("alice"), Password: []byte("alice-secret")})
	if connack.ReasonCode != 0 {
		t.Fatalf("CONNECT: %#x", connack.ReasonCode)
	}
	second.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), ClientIdentifier: "twice", Keepalive: 60,
		UsernameFlag: true, Username: []byte("alice"), PasswordFlag: true, Password: []byte(password)}})

	marker := "PAYLOAD-MARKER-"
	payload := []byte(marker + strings.Repeat("x", 900<<10))
	big, _ := dialMQTTConnWith(t, addr, packets.ConnectParams{ClientIdentifier: "big",
		Username: []byte("alice"), Password: []byte("alice-secret")})
	big.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1}, PacketID: 1,
		TopicName: "not/alices", Payload: payload})
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 },
		"the broker kept a connection that sent a second CONNECT, or published where it may not")

	out := logs.String()
	for _, secret := range []string{password, decimalBytes(password), "alice-secret", decimalBytes("alice-secret"),
		marker, decimalBytes(marker)} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q", secret)
		}
	}
	if len(out) > 64<<10 {
		t.Errorf("%d bytes of log for two refusals: a payload went in", len(out))
	}
	for _, summary := range []string{`Connect from \"twice\"`, `Publish to \"not/alices\"`} {
		if !strings.Contains(out, summary) { // what mochi said is there, summarised
			t.Errorf("the log does not name the refused packet %s:\n%s", summary, out)
		}
	}
}

// TestSilentConnectionsAreClosed: connections that never complete a
// CONNECT (nothing at all, or half of one) are closed after ConnectTimeout
// and counted, so they cannot hold the per-address limit.
func TestSilentConnectionsAreClosed(t *testing.T) {
	e := startTest(t, Config{ConnectTimeout: 300 * time.Millisecond, MaxConnectionsPerAddress: 3})
	addr := e.Addr().String()
	var silent []net.Conn
	for i := range 3 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if i == 2 {
			_, _ = c.Write([]byte{packets.Connect << 4, 40, 0, 4, 'M', 'Q'}) // a CONNECT that stops halfway
		}
		silent = append(silent, c)
	}
	start := time.Now()
	for _, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(hubtest.Timeout))
		if _, err := c.Read(make([]byte, 1)); err != io.EOF {
			t.Fatalf("a connection without CONNECT: %v, want closed by the broker (EOF)", err)
		}
		_ = c.Close()
	}
	t.Logf("connections without CONNECT closed after %v (ConnectTimeout 300ms)", time.Since(start).Round(time.Millisecond))
	hubtest.Eventually(t, hubtest.Timeout, func() bool { s := e.Stats(); return s.ConnectTimeouts == 3 && s.Connections["mqtt"] == 0 },
		"closed connections not counted, or still counted as open")
	c, err := hubtest.TryConnectMQTT(addr, "device")
	if err != nil {
		t.Fatalf("a device after the silent connections were closed: %v", err)
	}
	c.Disconnect(0)
}

// TestSubscriptionsPerClientAreCapped: past MaxSubscriptions a client's
// further filters are refused (and counted); it keeps those it has.
func TestSubscriptionsPerClientAreCapped(t *testing.T) {
	e := startTest(t, Config{MaxSubscriptions: 3})
	c := hubtest.ConnectMQTT(t, e.Addr().String(), "greedy")
	filters := map[string]byte{"a/1": 0, "a/2": 0, "a/3": 0, "a/4": 0, "a/5": 0}
	tok := c.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	granted, refused := 0, 0
	for _, code := range tok.(*paho.SubscribeToken).Result() {
		if code == 0x80 {
			refused++
		} else {
			granted++
		}
	}
	if granted != 3 || refused != 2 {
		t.Fatalf("%d granted, %d refused, want 3 and 2", granted, refused)
	}
	if s := e.Stats(); s.SubscriptionsRefused != 2 || s.Subscriptions != 3 {
		t.Fatalf("%d refused, %d held; want 2 and 3", s.SubscriptionsRefused, s.Subscriptions)
	}
	held := ""
	for f, code := range tok.(*paho.SubscribeToken).Result() {
		if code != 0x80 {
			held = f
		}
	}
	for filter, want := range map[string]byte{"b/1": 0x80, held: 1} { // a new one in a SUBSCRIBE of its own; one it holds, again
		tok := c.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(hubtest.Timeout) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if got := tok.(*paho.SubscribeToken).Result()[filter]; got != want {
			t.Fatalf("subscribing to %q at the cap: SUBACK %#x, want %#x", filter, got, want)
		}
	}
}

// TestSessionsAreCapped: at MaxSessions, a new client id ends the session
// disconnected longest (its queued messages with it); when every session
// is connected, the new client is refused.
func TestSessionsAreCapped(t *testing.T) {
	e := startTest(t, Config{MaxSessions: 3})
	addr := e.Addr().String()
	persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
	for _, id := range []string{"first", "second", "third"} { // disconnected in this order
		c, err := hubtest.ConnectMQTTWith("tcp://"+addr, id, "", "", persistent)
		if err != nil {
			t.Fatal(err)
		}
		hubtest.SubscribeMQTT(t, c, "q", 1)
		c.Disconnect(100)
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "%s stayed connected", id)
		// mochi keeps when a client went away in whole seconds: each leaves in a second of its own.
		left := time.Now().Unix()
		hubtest.Eventually(t, 2*time.Second, func() bool { return time.Now().Unix() > left }, "the clock stopped")
	}
	if err := e.Publish(t.Context(), bridge.Message{Topic: "q", QoS: 1, Payload: []byte("queued")}); err != nil {
		t.Fatal(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Inflight == 3 }, "not queued for the three sessions")

	newcomer := hubtest.ConnectMQTT(t, addr, "newcomer")
	if s := e.Stats(); s.Sessions != 3 || s.SessionsEnded != 1 || s.Inflight != 2 {
		t.Fatalf("%d sessions, %d ended, %d queued; want 3, 1 and 2", s.Sessions, s.SessionsEnded, s.Inflight)
	}
	var kept []string
	for _, id := range []string{"first", "second", "third"} {
		if _, ok := e.server.Clients.Get(id); ok {
			kept = append(kept, id)
		}
	}
	if strings.Join(kept, ",") != "second,third" {
		t.Fatalf("sessions kept: %v, want second and third: first was disconnected longest", kept)
	}
	var online []paho.Client
	for _, id := range kept {
		got := make(chan string, 1)
		c, err := hubtest.ConnectMQTTWith("tcp://"+addr, id, "", "", func(o *paho.ClientOptions) {
			persistent(o)
			o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- string(m.Payload()) })
		})
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		online = append(online, c)
		hubtest.Receive(t, got, hubtest.Timeout, id+"'s queued message")
	}
	_, err := hubtest.TryConnectMQTT(addr, "one-too-many")
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "server unavailable") {
		t.Fatalf("a new session when every session is connected: %v, want refused (server unavailable)", err)
	}
	if s := e.Stats(); s.SessionsRefused != 1 {
		t.Fatalf("%d sessions refused, want 1", s.SessionsRefused)
	}
	for _, c := range append(online, newcomer) {
		c.Disconnect(0)
	}
}

// TestSessionsExpire: the session of a client that went away is gone after
// SessionExpiry, with its subscriptions.
func TestSessionsExpire(t *testing.T) {
	const expiry = 3 * time.Second
	e := startTest(t, Config{SessionExpiry: expiry})
	c, err := hubtest.ConnectMQTTWith("tcp://"+e.Addr().String(), "away", "", "", func(o *paho.ClientOptions) { o.SetCleanSession(false) })
	if err != nil {
		t.Fatal(err)
	}
	hubtest.SubscribeMQTT(t, c, "q", 1)
	c.Disconnect(100)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "the client stayed connected")
	left := time.Now()
	if err := e.Publish(t.Context(), bridge.Message{Topic: "q", QoS: 1, Payload: []byte("queued")}); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.Sessions != 1 || s.Inflight != 1 {
		t.Fatalf("right after its client left: %d sessions, %d queued; want the session kept, with its message", s.Sessions, s.Inflight)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { s := e.Stats(); return s.Sessions == 0 && s.Subscriptions == 0 && s.Inflight == 0 },
		"the session outlived its expiry")
	// mochi counts in whole seconds and looks once a second: gone between one and three seconds late.
	if lived := time.Since(left); lived < expiry-time.Second {
		t.Fatalf("the session was gone after %v, before its expiry of %v", lived, expiry)
	}
}

// queueOffline makes a persistent session for id subscribed to q/#, leaves,
// and has n QoS 1 messages queued for it, numbered 0 to n-1.
func queueOffline(t *testing.T, e *Embedded, id string, n int) {
	t.Helper()
	c, connack := dialMQTTConnWith(t, e.Addr().String(), packets.ConnectParams{ClientIdentifier: id})
	if !connack.SessionPresent {
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: 1,
			Filters: packets.Subscriptions{{Filter: "q/#", Qos: 1}}})
		if pk := c.read(); pk.FixedHeader.Type != packets.Suback {
			t.Fatalf("subscribing: %s", brief(pk))
		}
	}
	c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	_ = c.conn.Close()
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "the client stayed connected")
	for i := range n {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "q/" + strconv.Itoa(i%3), QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatal(err)
		}
	}
}

// readQueued reads n PUBLISH packets and returns their payloads and ids.
func readQueued(c *mqttConn, n int) (payloads []string, ids []uint16) {
	for len(payloads) < n {
		pk := c.read()
		if pk.FixedHeader.Type == packets.Publish {
			payloads = append(payloads, string(pk.Payload))
			ids = append(ids, pk.PacketID)
		}
	}
	return payloads, ids
}

func inOrder(n int) []string {
	want := make([]string, n)
	for i := range want {
		want[i] = strconv.Itoa(i)
	}
	return want
}

// TestQueuedMessagesKeepTheirOrder: 20 QoS 1 messages queued for a client
// that is away come back in the order they were published [MQTT-4.6.0-1],
// on every reconnect, and again when they were resent but not acknowledged.
func TestQueuedMessagesKeepTheirOrder(t *testing.T) {
	e := startTest(t, Config{})
	const n = 20
	for round := range 5 {
		queueOffline(t, e, "ordered", n)
		c, _ := dialMQTTConnWith(t, e.Addr().String(), packets.ConnectParams{ClientIdentifier: "ordered"})
		got, _ := readQueued(c, n)
		if strings.Join(got, ",") != strings.Join(inOrder(n), ",") {
			t.Fatalf("round %d: got %v", round, got)
		}
		_ = c.conn.Close() // not acknowledged: they are resent at the next connection
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "still connected")
		c, _ = dialMQTTConnWith(t, e.Addr().String(), packets.ConnectParams{ClientIdentifier: "ordered"})
		got, ids := readQueued(c, n)
		if strings.Join(got, ",") != strings.Join(inOrder(n), ",") {
			t.Fatalf("round %d, resent: got %v", round, got)
		}
		for _, id := range ids {
			c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: id})
		}
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Inflight == 0 }, "acknowledged messages still in flight")
		c.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
		_ = c.conn.Close()
		hubtest.Eventually(t, hubtest.Timeout, func() bool { return e.Stats().Connections["mqtt"] == 0 }, "still connected")
	}
}

// TestQueuedMessagesKeepTheirOrderAcrossARestart: the same, with the broker
// stopped and started again on its store in between.
func TestQueuedMessagesKeepTheirOrderAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	open := func() (*Embedded, *Store) {
		store, err := OpenStore(dir, StoreConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		return startTest(t, Config{Store: store}), store
	}
	e, store := open()
	const n = 20
	queueOffline(t, e, "ordered", n)
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	e, store = open()
	defer store.Close()
	if s := e.Stats(); s.Inflight != n || s.Subscriptions != 1 {
		t.Fatalf("after the restart: %d queued, %d subscriptions; want %d and 1", s.Inflight, s.Subscriptions, n)
	}
	c, connack := dialMQTTConnWith(t, e.Addr().String(), packets.ConnectParams{ClientIdentifier: "ordered"})
	if !connack.SessionPresent {
		t.Fatal("the session did not survive the restart")
	}
	if got, _ := readQueued(c, n); strings.Join(got, ",") != strings.Join(inOrder(n), ",") {
		t.Fatalf("after a restart: got %v", got)
	}
}

// TestRetainedCountedAfterARestart: $SYS's count of retained messages (and
// the hub's metric built on it) is right after a restart.
func TestRetainedCountedAfterARestart(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenStore(dir, StoreConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := startTest(t, Config{Store: store})
	for i := range 50 {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "ret/" + strconv.Itoa(i), Retain: true, Payload: []byte("v")}); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	store, err = OpenStore(dir, StoreConfig{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	e = startTest(t, Config{Store: store})
	if got := e.Stats().Retained; got != 50 {
		t.Fatalf("%d retained messages counted after a restart, want 50", got)
	}
}

// TestEveryRetainedMessageReachesANewSubscriber: 1,000 retained 1 KB
// messages, far more than a client's queue holds: a new mosquitto_sub gets
// every one.
func TestEveryRetainedMessageReachesANewSubscriber(t *testing.T) {
	sub := hubtest.RequireCommand(t, "mosquitto_sub", "mosquitto-clients")
	e := startTest(t, Config{MaxPendingWrites: 64})
	const n = 1000
	body := []byte(strings.Repeat("r", 1024))
	for i := range n {
		if err := e.Publish(t.Context(), bridge.Message{Topic: "ret/" + strconv.Itoa(i), Retain: true, Payload: body}); err != nil {
			t.Fatal(err)
		}
	}
	host, port, _ := net.SplitHostPort(e.Addr().String())
	out, err := exec.CommandContext(t.Context(), sub, "-h", host, "-p", port, "-t", "ret/#", "-C", strconv.Itoa(n), "-W", "30", "-F", "%t").Output()
	topics := map[string]bool{}
	for _, topic := range strings.Fields(string(out)) {
		topics[topic] = true
	}
	if err != nil || len(topics) != n {
		t.Fatalf("mosquitto_sub got %d retained messages of %d (%v)", len(topics), n, err)
	}
	if s := e.Stats(); s.MessagesDropped != 0 {
		t.Fatalf("%d messages dropped", s.MessagesDropped)
	}
}

// TestQueuedMessagesPerSessionAreCapped: a session keeps at most MaxQueued
// messages for a client that is away; the rest are dropped and counted, and
// the client gets the ones kept, in order.
func TestQueuedMessagesPerSessionAreCapped(t *testing.T) {
	e := startTest(t, Config{MaxQueued: 5})
	queueOffline(t, e, "capped", 8)
	if s := e.Stats(); s.Inflight != 5 || s.MessagesDropped != 3 {
		t.Fatalf("%d queued, %d dropped; want 5 and 3", s.Inflight, s.MessagesDropped)
	}
	c, _ := dialMQTTConnWith(t, e.Addr().String(), packets.ConnectParams{ClientIdentifier: "capped"})
	if got, _ := readQueued(c, 5); strings.Join(got, ",") != strings.Join(inOrder(5), ",") {
		t.Fatalf("got %v", got)
	}
}
