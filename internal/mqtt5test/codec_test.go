package mqtt5test

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// unhex turns "20 03 00 00 00" into bytes.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestVarIntSpecExamples: the table of section 1.5.5, both ways.
func TestVarIntSpecExamples(t *testing.T) {
	for _, c := range []struct {
		v   int
		hex string
	}{
		{0, "00"}, {127, "7F"}, {128, "80 01"}, {16383, "FF 7F"}, {16384, "80 80 01"},
		{2097151, "FF FF 7F"}, {2097152, "80 80 80 01"}, {268435455, "FF FF FF 7F"},
	} {
		want := unhex(t, c.hex)
		if got := appendVarInt(nil, c.v); !bytes.Equal(got, want) {
			t.Errorf("encode %d: % X, want % X", c.v, got, want)
		}
		r := &reader{b: want}
		if got := r.varInt(); got != c.v || r.err != nil || r.left() != 0 {
			t.Errorf("decode % X: %d (%v), want %d", want, got, r.err, c.v)
		}
	}
	for _, bad := range []string{"80 00", "FF 80 00", "80 80 80 80 01", "FF FF FF FF 7F", "80"} {
		r := &reader{b: unhex(t, bad)}
		if r.varInt(); r.err == nil {
			t.Errorf("decode %s: no error", bad)
		}
	}
}

// TestUTF8SpecExample: Figure 1-1 of section 1.5.4, "A" then U+2A6D4.
func TestUTF8SpecExample(t *testing.T) {
	want := unhex(t, "00 05 41 F0 AA 9B 94")
	got, err := appendString(nil, "A\U0002A6D4")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("encode: % X (%v), want % X", got, err, want)
	}
	r := &reader{b: want}
	if s := r.str("s"); s != "A\U0002A6D4" || r.err != nil {
		t.Fatalf("decode: %q (%v)", s, r.err)
	}
	for _, bad := range []string{"00 02 C3 28", "00 01 00", "00 03 ED A0 80", "00 03 41"} {
		r := &reader{b: unhex(t, bad)}
		if r.str("s"); r.err == nil {
			t.Errorf("decode %s: no error", bad)
		}
	}
}

// TestEncodeFixtures: packets a client sends, against bytes worked out by
// hand from the specification. The CONNECT's variable header is the
// example of section 3.1.2.11 (Figure 3-6): flags 0xCE, Keep Alive 10,
// Session Expiry Interval 10.
func TestEncodeFixtures(t *testing.T) {
	user, empty := "u", ""
	for _, c := range []struct {
		name string
		p    Packet
		hex  string
	}{
		{"CONNECT of section 3.1.2.11", &Connect{
			ClientID: "c1", CleanStart: true, KeepAlive: 10,
			Properties: Properties{SessionExpiry: Ptr[uint32](10)},
			Will:       &Will{Topic: "w", Payload: []byte("x"), QoS: 1},
			Username:   &user, Password: []byte("p"),
		}, "10 21 00 04 4D 51 54 54 05 CE 00 0A 05 11 00 00 00 0A 00 02 63 31 00 00 01 77 00 01 78 00 01 75 00 01 70"},
		{"CONNECT, minimal", &Connect{ClientID: "a"}, "10 0E 00 04 4D 51 54 54 05 00 00 00 00 00 01 61"},
		{"CONNECT, every property and a retained Will with a delay", &Connect{
			ClientID: "", KeepAlive: 60,
			Properties: Properties{
				SessionExpiry: Ptr[uint32](3600), AuthMethod: &empty, RequestProblemInfo: Ptr[byte](0),
				RequestResponseInfo: Ptr[byte](1), ReceiveMaximum: Ptr[uint16](2), TopicAliasMaximum: Ptr[uint16](5),
				User: []UserProperty{{"k", "v"}}, MaximumPacketSize: Ptr[uint32](256),
			},
			Will: &Will{Topic: "w", Payload: []byte{}, QoS: 2, Retain: true, Properties: Properties{
				PayloadFormat: Ptr[byte](1), MessageExpiry: Ptr[uint32](7), ContentType: &user,
				ResponseTopic: &user, CorrelationData: []byte{0}, WillDelay: Ptr[uint32](2),
			}},
		}, "10 49 00 04 4D 51 54 54 05 34 00 3C" +
			" 1E 11 00 00 0E 10 15 00 00 17 00 19 01 21 00 02 22 00 05 26 00 01 6B 00 01 76 27 00 00 01 00" +
			" 00 00" +
			" 18 01 01 02 00 00 00 07 03 00 01 75 08 00 01 75 09 00 01 00 18 00 00 00 02" +
			" 00 01 77 00 00"},
		{"PUBLISH QoS 1 with expiry and a user property", &Publish{
			Topic: "a/b", QoS: 1, PacketID: 10, Payload: []byte("hi"),
			Properties: Properties{MessageExpiry: Ptr[uint32](60), User: []UserProperty{{"k", "v"}}},
		}, "32 16 00 03 61 2F 62 00 0A 0C 02 00 00 00 3C 26 00 01 6B 00 01 76 68 69"},
		{"PUBLISH QoS 2, DUP, retained, alias", &Publish{
			Topic: "", QoS: 2, Dup: true, Retain: true, PacketID: 1,
			Properties: Properties{TopicAlias: Ptr[uint16](3)},
		}, "3D 08 00 00 00 01 03 23 00 03"},
		{"PUBLISH QoS 0, empty payload", &Publish{Topic: "t"}, "30 04 00 01 74 00"},
		{"PUBACK, success", &Ack{Kind: PUBACK, PacketID: 10}, "40 02 00 0A"},
		{"PUBREC, no matching subscribers", &Ack{Kind: PUBREC, PacketID: 10, Reason: NoMatchingSubscribers}, "50 03 00 0A 10"},
		{"PUBREL", &Ack{Kind: PUBREL, PacketID: 10}, "62 02 00 0A"},
		{"PUBCOMP with a user property", &Ack{Kind: PUBCOMP, PacketID: 10, Properties: Properties{User: []UserProperty{{"a", ""}}}},
			"70 0A 00 0A 00 06 26 00 01 61 00 00"},
		{"SUBSCRIBE with options and an identifier", &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIDs: []int{5}},
			Subscriptions: []Subscription{{Filter: "a/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}},
			"82 0B 00 01 02 0B 05 00 03 61 2F 23 2D"},
		{"SUBSCRIBE, identifier 268,435,455, two filters", &Subscribe{PacketID: 2, Properties: Properties{SubscriptionIDs: []int{268435455}},
			Subscriptions: []Subscription{{Filter: "a"}, {Filter: "b", QoS: 2, RetainHandling: 1}}},
			"82 10 00 02 05 0B FF FF FF 7F 00 01 61 00 00 01 62 12"},
		{"UNSUBSCRIBE", &Unsubscribe{PacketID: 3, Filters: []string{"a", "b/+"}}, "A2 0B 00 03 00 00 01 61 00 03 62 2F 2B"},
		{"PINGREQ", &Pingreq{}, "C0 00"},
		{"DISCONNECT, normal", &Disconnect{}, "E0 00"},
		{"DISCONNECT with Will", &Disconnect{Reason: DisconnectWithWill}, "E0 02 04 00"},
		{"DISCONNECT, session expiry 0", &Disconnect{Properties: Properties{SessionExpiry: Ptr[uint32](0)}}, "E0 07 00 05 11 00 00 00 00"},
		{"AUTH, re-authenticate", &Auth{Reason: ReAuthenticate, Properties: Properties{AuthMethod: &user}},
			"F0 06 19 04 15 00 01 75"},
	} {
		got, err := Encode(c.p)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := unhex(t, c.hex); !bytes.Equal(got, want) {
			t.Errorf("%s:\n got % X\nwant % X", c.name, got, want)
		}
	}
}

// TestEncodeRefuses: what no broker can be asked to judge.
func TestEncodeRefuses(t *testing.T) {
	for name, p := range map[string]Packet{
		"QoS 1 without id":            &Publish{Topic: "a", QoS: 1},
		"QoS 3":                       &Publish{Topic: "a", QoS: 3, PacketID: 1},
		"session expiry in a PUBLISH": &Publish{Topic: "a", Properties: Properties{SessionExpiry: Ptr[uint32](1)}},
		"will delay in a CONNECT":     &Connect{Properties: Properties{WillDelay: Ptr[uint32](1)}},
		"two ids in a SUBSCRIBE":      &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIDs: []int{1, 2}}, Subscriptions: []Subscription{{Filter: "a"}}},
		"subscription id 0":           &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIDs: []int{0}}, Subscriptions: []Subscription{{Filter: "a"}}},
		"SUBSCRIBE without filters":   &Subscribe{PacketID: 1},
		"topic of 65,536 bytes":       &Publish{Topic: strings.Repeat("a", 65536)},
		"an Ack of type CONNECT":      &Ack{Kind: CONNECT},
	} {
		if b, err := Encode(p); err == nil {
			t.Errorf("%s: encoded as % X", name, b)
		}
	}
}

// TestDecodeFixtures: packets a server sends, from bytes worked out by hand.
func TestDecodeFixtures(t *testing.T) {
	for _, c := range []struct {
		name string
		hex  string
		want Packet
	}{
		{"CONNACK, success", "20 03 00 00 00", &Connack{}},
		{"CONNACK, session present, what Mosquitto advertises", "20 10 01 00 0D 21 00 14 22 00 0A 25 01 27 00 10 00 00",
			&Connack{SessionPresent: true, Properties: Properties{ReceiveMaximum: Ptr[uint16](20),
				TopicAliasMaximum: Ptr[uint16](10), RetainAvailable: Ptr[byte](1), MaximumPacketSize: Ptr[uint32](1 << 20)}}},
		{"CONNACK, refused", "20 0A 00 8C 07 1F 00 04 61 75 74 68", &Connack{Reason: BadAuthenticationMethod,
			Properties: Properties{ReasonString: Ptr("auth")}}},
		{"PUBLISH QoS 1 with everything", "32 2A 00 03 61 2F 62 00 07 20 01 01 02 00 00 00 3B 03 00 01 74 08 00 01 72 09 00 00 0B 07 0B 81 01 23 00 01 26 00 01 6B 00 00 6F 6B",
			&Publish{Topic: "a/b", TopicOnWire: "a/b", QoS: 1, PacketID: 7, Payload: []byte("ok"), Properties: Properties{
				PayloadFormat: Ptr[byte](1), MessageExpiry: Ptr[uint32](59), ContentType: Ptr("t"), ResponseTopic: Ptr("r"),
				CorrelationData: []byte{}, SubscriptionIDs: []int{7, 129}, TopicAlias: Ptr[uint16](1),
				User: []UserProperty{{"k", ""}}}}},
		{"PUBLISH QoS 0, retained, empty", "31 04 00 01 74 00", &Publish{Topic: "t", TopicOnWire: "t", Retain: true, Payload: []byte{}}},
		{"PUBLISH QoS 2, DUP", "3C 07 00 01 74 00 09 00 78", &Publish{Topic: "t", TopicOnWire: "t", QoS: 2, Dup: true, PacketID: 9, Payload: []byte("x")}},
		{"PUBACK, short", "40 02 00 0A", &Ack{Kind: PUBACK, PacketID: 10, Short: true}},
		{"PUBACK, not authorized", "40 03 00 0A 87", &Ack{Kind: PUBACK, PacketID: 10, Reason: NotAuthorized}},
		{"PUBREC with a reason string", "50 08 00 0A 10 04 1F 00 01 6E", &Ack{Kind: PUBREC, PacketID: 10, Reason: NoMatchingSubscribers,
			Properties: Properties{ReasonString: Ptr("n")}}},
		{"PUBREL", "62 02 00 0A", &Ack{Kind: PUBREL, PacketID: 10, Short: true}},
		{"PUBCOMP, id not found", "70 04 00 0A 92 00", &Ack{Kind: PUBCOMP, PacketID: 10, Reason: PacketIdentifierNotFound}},
		{"SUBACK", "90 06 00 01 00 00 01 8F", &Suback{PacketID: 1, Reasons: []Reason{Success, GrantedQoS1, TopicFilterInvalid}}},
		{"UNSUBACK", "B0 05 00 02 00 00 11", &Unsuback{PacketID: 2, Reasons: []Reason{Success, NoSubscriptionExisted}}},
		{"PINGRESP", "D0 00", &Pingresp{}},
		{"DISCONNECT, no reason", "E0 00", &Disconnect{}},
		{"DISCONNECT, packet too large, no properties", "E0 01 95", &Disconnect{Reason: PacketTooLarge}},
		{"DISCONNECT, taken over, reason string", "E0 06 8E 04 1F 00 01 78", &Disconnect{Reason: SessionTakenOver,
			Properties: Properties{ReasonString: Ptr("x")}}},
		{"AUTH, success", "F0 00", &Auth{}},
	} {
		raw := unhex(t, c.hex)
		got, err := Decode(raw)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if m := MetaOf(got); !bytes.Equal(m.Raw, raw) {
			t.Errorf("%s: Raw % X", c.name, m.Raw)
		}
		*MetaOf(got) = Meta{}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s:\n got %s\nwant %s", c.name, Describe(got), Describe(c.want))
		}
	}
}

// TestDecodeRefusesMalformed: each packet breaks one rule, and the decoder
// says so.
func TestDecodeRefusesMalformed(t *testing.T) {
	for _, c := range []struct{ name, hex string }{
		{"an MQTT 3.1.1 CONNACK: no property length", "20 02 00 01"},
		{"CONNACK, reserved flag", "20 03 02 00 00"},
		{"CONNACK, session present with an error", "20 03 01 80 00"},
		{"CONNACK, a DISCONNECT reason code", "20 03 00 04 00"},
		{"CONNACK, Maximum QoS 2", "20 05 00 00 02 24 02"},
		{"CONNACK, Receive Maximum 0", "20 06 00 00 03 21 00 00"},
		{"CONNACK, Retain Available 2", "20 05 00 00 02 25 02"},
		{"CONNACK, property given twice", "20 09 00 00 06 21 00 01 21 00 01"},
		{"CONNACK, Topic Alias (a PUBLISH property)", "20 06 00 00 03 23 00 01"},
		{"CONNACK, unknown property", "20 05 00 00 02 7F 00"},
		{"CONNACK, property length past the end", "20 04 00 00 05 21"},
		{"PUBACK granting QoS 1, a SUBACK code (mochi 2.7.9)", "40 03 00 0A 01"},
		{"PUBACK, packet id 0", "40 02 00 00"},
		{"PUBACK, bytes left over", "40 05 00 0A 00 00 FF"},
		{"PUBACK, Remaining Length says 3, 2 follow", "40 03 00 0A"},
		{"PUBREL with flags 0000", "60 02 00 0A"},
		{"PUBCOMP, a PUBACK code", "70 03 00 0A 10"},
		{"PUBLISH, QoS 3", "36 05 00 01 74 00 01"},
		{"PUBLISH, DUP on QoS 0", "38 04 00 01 74 00"},
		{"PUBLISH QoS 1, id 0", "32 06 00 01 74 00 00 00"},
		{"PUBLISH, wildcard topic", "30 04 00 01 23 00"},
		{"PUBLISH, topic not UTF-8", "30 05 00 02 C3 28 00"},
		{"PUBLISH, U+0000 in the topic", "30 05 00 02 61 00 00"},
		{"PUBLISH, empty topic without alias", "30 03 00 00 00"},
		{"PUBLISH, Topic Alias 0", "30 07 00 01 74 03 23 00 00"},
		{"PUBLISH, Session Expiry (a CONNECT property)", "30 09 00 01 74 05 11 00 00 00 01"},
		{"PUBLISH, Message Expiry twice", "30 0E 00 01 74 0A 02 00 00 00 01 02 00 00 00 01"},
		{"PUBLISH, Subscription Identifier 0", "30 06 00 01 74 02 0B 00"},
		{"PUBLISH, UTF-8 format on bytes that are not", "30 07 00 01 74 02 01 01 FF"},
		{"PUBLISH, Payload Format 2", "30 06 00 01 74 02 01 02"},
		{"PUBLISH, wildcard Response Topic", "30 09 00 01 74 05 08 00 02 61 23"},
		{"SUBACK without reason codes", "90 03 00 01 00"},
		{"SUBACK, a PUBACK code", "90 04 00 01 00 10"},
		{"UNSUBACK, a SUBACK code", "B0 04 00 01 00 01"},
		{"PINGRESP, Remaining Length in two bytes", "D0 80 00"},
		{"PINGRESP with a body", "D0 01 00"},
		{"DISCONNECT with Will: the client's code", "E0 01 04"},
		{"AUTH, a CONNACK code", "F0 02 87 00"},
		{"CONNECT: only clients send it", "10 0E 00 04 4D 51 54 54 05 00 00 00 00 00 01 61"},
		{"SUBSCRIBE: only clients send it", "82 07 00 01 00 00 01 61 00"},
		{"PINGREQ: only clients send it", "C0 00"},
		{"reserved type 0", "00 00"},
		{"empty", ""},
	} {
		p, err := Decode(unhex(t, c.hex))
		if err == nil {
			t.Errorf("%s: decoded as %s", c.name, Describe(p))
		} else if !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, not ErrMalformed", c.name, err)
		} else {
			t.Logf("%s: %v", c.name, err)
		}
	}
}

// TestReadPacket: packets are cut from a stream by their Remaining Length,
// which must be in its shortest form, within the client's maximum.
func TestReadPacket(t *testing.T) {
	stream := unhex(t, "D0 00 40 02 00 0A 30 80 01"+strings.Repeat("00", 128))
	r := bufio.NewReader(bytes.NewReader(stream))
	for _, want := range []string{"D0 00", "40 02 00 0A"} {
		got, err := ReadPacket(r, 0)
		if err != nil || !bytes.Equal(got, unhex(t, want)) {
			t.Fatalf("ReadPacket: % X (%v), want %s", got, err, want)
		}
	}
	var tooLarge *TooLargeError
	if _, err := ReadPacket(r, 130); !errors.As(err, &tooLarge) || tooLarge.Size != 131 {
		t.Fatalf("131-byte packet with a maximum of 130: %v", err)
	}
	for _, bad := range []string{"D0 80 00", "30 FF FF FF FF 01"} {
		if _, err := ReadPacket(bufio.NewReader(bytes.NewReader(unhex(t, bad))), 0); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", bad, err)
		}
	}
	if _, err := ReadPacket(bufio.NewReader(bytes.NewReader(unhex(t, "40 02 00"))), 0); err == nil {
		t.Error("truncated packet: no error")
	}
}

// serverPackets are the packets of TestRoundTrip and the fuzzer's seeds.
func serverPackets() []Packet {
	return []Packet{
		&Connack{SessionPresent: true, Properties: Properties{
			SessionExpiry: Ptr[uint32](60), AssignedClientID: Ptr("id"), ServerKeepAlive: Ptr[uint16](30),
			AuthMethod: Ptr("m"), AuthData: []byte{1}, ResponseInfo: Ptr("ri"), ServerReference: Ptr("s"),
			ReasonString: Ptr("ok"), ReceiveMaximum: Ptr[uint16](100), TopicAliasMaximum: Ptr[uint16](0),
			MaximumQoS: Ptr[byte](1), RetainAvailable: Ptr[byte](0), User: []UserProperty{{"a", "1"}, {"a", "2"}},
			MaximumPacketSize: Ptr[uint32](1024), WildcardSubAvailable: Ptr[byte](0), SubIDAvailable: Ptr[byte](0),
			SharedSubAvailable: Ptr[byte](0)}},
		&Publish{Topic: "x/y", TopicOnWire: "x/y", QoS: 2, Retain: true, PacketID: 65535, Payload: []byte{0, 1, 2},
			Properties: Properties{PayloadFormat: Ptr[byte](0), MessageExpiry: Ptr[uint32](1), ContentType: Ptr("c"),
				ResponseTopic: Ptr("r/1"), CorrelationData: []byte{0xFF}, SubscriptionIDs: []int{1, 268435455},
				TopicAlias: Ptr[uint16](65535), User: []UserProperty{{"ü", "∞"}}}},
		&Ack{Kind: PUBACK, PacketID: 1, Reason: QuotaExceeded, Properties: Properties{ReasonString: Ptr("full")}},
		&Ack{Kind: PUBREC, PacketID: 2, Reason: Success, Properties: Properties{User: []UserProperty{{"k", "v"}}}},
		&Ack{Kind: PUBREL, PacketID: 3, Reason: PacketIdentifierNotFound},
		&Ack{Kind: PUBCOMP, PacketID: 4},
		&Suback{PacketID: 5, Reasons: []Reason{GrantedQoS2, SharedSubsNotSupported}, Properties: Properties{ReasonString: Ptr("r")}},
		&Unsuback{PacketID: 6, Reasons: []Reason{NoSubscriptionExisted}},
		&Pingresp{},
		&Disconnect{Reason: ServerShuttingDown, Properties: Properties{SessionExpiry: Ptr[uint32](0), ServerReference: Ptr("b")}},
		&Auth{Reason: ContinueAuthentication, Properties: Properties{AuthMethod: Ptr("SCRAM"), AuthData: []byte("d")}},
	}
}

// TestRoundTrip: what the encoder writes for a server, the decoder reads
// back the same.
func TestRoundTrip(t *testing.T) {
	for _, p := range serverPackets() {
		b, err := Encode(p)
		if err != nil {
			t.Errorf("encode %s: %v", Describe(p), err)
			continue
		}
		got, err := Decode(b)
		if err != nil {
			t.Errorf("decode %s: %v", Describe(p), err)
			continue
		}
		*MetaOf(got) = Meta{}
		if a, ok := got.(*Ack); ok {
			a.Short = false
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("round trip:\n got %s\nwant %s", Describe(got), Describe(p))
		}
	}
}

// FuzzDecode: the decoder never panics, and what it accepts encodes to
// bytes it accepts again as the same packet.
func FuzzDecode(f *testing.F) {
	for _, p := range serverPackets() {
		f.Add(MustEncode(p))
	}
	f.Add([]byte{0x20, 0x03, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		*MetaOf(p) = Meta{}
		if a, ok := p.(*Ack); ok {
			a.Short = false
		}
		if m, ok := p.(*Publish); ok {
			m.Topic = m.TopicOnWire
		}
		again, err := Encode(p)
		if err != nil {
			t.Fatalf("decoded %s, which does not encode: %v", Describe(p), err)
		}
		q, err := Decode(again)
		if err != nil {
			t.Fatalf("decoded %s, encoded as % X, which does not decode: %v", Describe(p), again, err)
		}
		*MetaOf(q) = Meta{}
		if a, ok := q.(*Ack); ok {
			a.Short = false
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip:\n got %s\nwant %s", Describe(q), Describe(p))
		}
	})
}
