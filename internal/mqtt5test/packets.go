package mqtt5test

import (
	"fmt"
	"strings"
	"time"
)

// Type is an MQTT control packet type (section 2.1.2).
type Type byte

// The packet types.
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15
)

var typeNames = [...]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL",
	"PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Packet is one MQTT control packet: *Connect, *Connack, *Publish, *Ack,
// *Subscribe, *Suback, *Unsubscribe, *Unsuback, *Pingreq, *Pingresp,
// *Disconnect or *Auth.
type Packet interface {
	Type() Type
	meta() *Meta
}

// Meta is what the client knows of a packet it received; zero in packets a
// test builds.
type Meta struct {
	// Raw is the packet as it came off the wire, fixed header included.
	Raw []byte
	// Received is when the client read it.
	Received time.Time
}

func (m *Meta) meta() *Meta { return m }

// MetaOf returns the Meta of a received packet.
func MetaOf(p Packet) *Meta { return p.meta() }

// UserProperty is one User Property (0x26): a name and a value, both UTF-8.
// A packet may carry several, with repeated names; their order is kept.
type UserProperty struct{ Key, Value string }

// Properties are the MQTT 5 properties (section 2.2.2) of any packet. A nil
// pointer or slice means the property is absent. Which ones a packet may
// carry depends on its type; Encode and Decode enforce it.
type Properties struct {
	PayloadFormat        *byte   // 0x01
	MessageExpiry        *uint32 // 0x02, seconds
	ContentType          *string // 0x03
	ResponseTopic        *string // 0x08
	CorrelationData      []byte  // 0x09; non-nil and empty is present and empty
	SubscriptionIDs      []int   // 0x0B, each 1..268,435,455
	SessionExpiry        *uint32 // 0x11, seconds
	AssignedClientID     *string // 0x12
	ServerKeepAlive      *uint16 // 0x13, seconds
	AuthMethod           *string // 0x15
	AuthData             []byte  // 0x16
	RequestProblemInfo   *byte   // 0x17
	WillDelay            *uint32 // 0x18, seconds
	RequestResponseInfo  *byte   // 0x19
	ResponseInfo         *string // 0x1A
	ServerReference      *string // 0x1C
	ReasonString         *string // 0x1F
	ReceiveMaximum       *uint16 // 0x21
	TopicAliasMaximum    *uint16 // 0x22
	TopicAlias           *uint16 // 0x23
	MaximumQoS           *byte   // 0x24
	RetainAvailable      *byte   // 0x25
	User                 []UserProperty
	MaximumPacketSize    *uint32 // 0x27
	WildcardSubAvailable *byte   // 0x28
	SubIDAvailable       *byte   // 0x29
	SharedSubAvailable   *byte   // 0x2A
}

// Ptr returns a pointer to v, for the optional fields of Properties.
func Ptr[T any](v T) *T { return &v }

// Reason is a reason code (section 2.4). The same value means different
// things in different packets: 0x00 is Success, Normal disconnection or
// Granted QoS 0; String names the common meaning.
type Reason byte

// The reason codes the tests look for.
const (
	Success                     Reason = 0x00
	GrantedQoS1                 Reason = 0x01
	GrantedQoS2                 Reason = 0x02
	DisconnectWithWill          Reason = 0x04
	NoMatchingSubscribers       Reason = 0x10
	NoSubscriptionExisted       Reason = 0x11
	ContinueAuthentication      Reason = 0x18
	ReAuthenticate              Reason = 0x19
	UnspecifiedError            Reason = 0x80
	MalformedPacket             Reason = 0x81
	ProtocolError               Reason = 0x82
	ImplementationSpecificError Reason = 0x83
	UnsupportedProtocolVersion  Reason = 0x84
	ClientIdentifierNotValid    Reason = 0x85
	BadUserNameOrPassword       Reason = 0x86
	NotAuthorized               Reason = 0x87
	ServerUnavailable           Reason = 0x88
	ServerBusy                  Reason = 0x89
	Banned                      Reason = 0x8A
	ServerShuttingDown          Reason = 0x8B
	BadAuthenticationMethod     Reason = 0x8C
	KeepAliveTimeout            Reason = 0x8D
	SessionTakenOver            Reason = 0x8E
	TopicFilterInvalid          Reason = 0x8F
	TopicNameInvalid            Reason = 0x90
	PacketIdentifierInUse       Reason = 0x91
	PacketIdentifierNotFound    Reason = 0x92
	ReceiveMaximumExceeded      Reason = 0x93
	TopicAliasInvalid           Reason = 0x94
	PacketTooLarge              Reason = 0x95
	MessageRateTooHigh          Reason = 0x96
	QuotaExceeded               Reason = 0x97
	AdministrativeAction        Reason = 0x98
	PayloadFormatInvalid        Reason = 0x99
	RetainNotSupported          Reason = 0x9A
	QoSNotSupported             Reason = 0x9B
	UseAnotherServer            Reason = 0x9C
	ServerMoved                 Reason = 0x9D
	SharedSubsNotSupported      Reason = 0x9E
	ConnectionRateExceeded      Reason = 0x9F
	MaximumConnectTime          Reason = 0xA0
	SubIDsNotSupported          Reason = 0xA1
	WildcardSubsNotSupported    Reason = 0xA2
)

var reasonNames = map[Reason]string{
	0x00: "Success", 0x01: "Granted QoS 1", 0x02: "Granted QoS 2", 0x04: "Disconnect with Will Message",
	0x10: "No matching subscribers", 0x11: "No subscription existed", 0x18: "Continue authentication",
	0x19: "Re-authenticate", 0x80: "Unspecified error", 0x81: "Malformed Packet", 0x82: "Protocol Error",
	0x83: "Implementation specific error", 0x84: "Unsupported Protocol Version",
	0x85: "Client Identifier not valid", 0x86: "Bad User Name or Password", 0x87: "Not authorized",
	0x88: "Server unavailable", 0x89: "Server busy", 0x8A: "Banned", 0x8B: "Server shutting down",
	0x8C: "Bad authentication method", 0x8D: "Keep Alive timeout", 0x8E: "Session taken over",
	0x8F: "Topic Filter invalid", 0x90: "Topic Name invalid", 0x91: "Packet Identifier in use",
	0x92: "Packet Identifier not found", 0x93: "Receive Maximum exceeded", 0x94: "Topic Alias invalid",
	0x95: "Packet too large", 0x96: "Message rate too high", 0x97: "Quota exceeded",
	0x98: "Administrative action", 0x99: "Payload format invalid", 0x9A: "Retain not supported",
	0x9B: "QoS not supported", 0x9C: "Use another server", 0x9D: "Server moved",
	0x9E: "Shared Subscriptions not supported", 0x9F: "Connection rate exceeded",
	0xA0: "Maximum connect time", 0xA1: "Subscription Identifiers not supported",
	0xA2: "Wildcard Subscriptions not supported",
}

func (r Reason) String() string {
	if name, ok := reasonNames[r]; ok {
		return fmt.Sprintf("0x%02X %s", byte(r), name)
	}
	return fmt.Sprintf("0x%02X", byte(r))
}

// Will is the Will Message of a CONNECT (section 3.1.3.2 to 3.1.3.4).
type Will struct {
	Topic      string
	Payload    []byte
	QoS        byte
	Retain     bool
	Properties Properties // Will Properties: Will Delay Interval and those of a PUBLISH
}

// Connect is a CONNECT packet (section 3.1).
type Connect struct {
	Meta
	// ProtocolName and ProtocolLevel default to "MQTT" and 5 when empty and 0.
	ProtocolName  string
	ProtocolLevel byte
	ClientID      string
	CleanStart    bool
	KeepAlive     uint16 // seconds; 0 turns keep alive off
	Properties    Properties
	Will          *Will
	Username      *string
	Password      []byte // nil: no password
}

func (*Connect) Type() Type { return CONNECT }

// Connack is a CONNACK packet (section 3.2).
type Connack struct {
	Meta
	SessionPresent bool
	Reason         Reason
	Properties     Properties
}

func (*Connack) Type() Type { return CONNACK }

// Publish is a PUBLISH packet (section 3.3).
type Publish struct {
	Meta
	// Topic is the message's topic. On a received packet that uses a topic
	// alias with an empty Topic Name, it is the topic the alias stands for
	// and TopicOnWire is "".
	Topic       string
	TopicOnWire string
	QoS         byte
	Retain      bool
	Dup         bool
	PacketID    uint16 // 0 on a QoS 0 message; Client.Send assigns one when 0 for QoS 1 and 2
	Properties  Properties
	Payload     []byte
}

func (*Publish) Type() Type { return PUBLISH }

// Ack is a PUBACK, PUBREC, PUBREL or PUBCOMP packet (sections 3.4 to 3.7).
type Ack struct {
	Meta
	Kind       Type
	PacketID   uint16
	Reason     Reason
	Properties Properties
	// Short, on a received packet, means the Reason Code was left out (a
	// Remaining Length of 2): Success and no properties.
	Short bool
}

func (a *Ack) Type() Type { return a.Kind }

// Subscription is one Topic Filter of a SUBSCRIBE with its options (section 3.8.3.1).
type Subscription struct {
	Filter            string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte // 0: at subscribe, 1: at subscribe if new, 2: never
}

// Subscribe is a SUBSCRIBE packet (section 3.8).
type Subscribe struct {
	Meta
	PacketID      uint16
	Properties    Properties // Subscription Identifier (one) and User Properties
	Subscriptions []Subscription
}

func (*Subscribe) Type() Type { return SUBSCRIBE }

// Suback is a SUBACK packet (section 3.9).
type Suback struct {
	Meta
	PacketID   uint16
	Properties Properties
	Reasons    []Reason
}

func (*Suback) Type() Type { return SUBACK }

// Unsubscribe is an UNSUBSCRIBE packet (section 3.10).
type Unsubscribe struct {
	Meta
	PacketID   uint16
	Properties Properties
	Filters    []string
}

func (*Unsubscribe) Type() Type { return UNSUBSCRIBE }

// Unsuback is an UNSUBACK packet (section 3.11).
type Unsuback struct {
	Meta
	PacketID   uint16
	Properties Properties
	Reasons    []Reason
}

func (*Unsuback) Type() Type { return UNSUBACK }

// Pingreq is a PINGREQ packet (section 3.12).
type Pingreq struct{ Meta }

func (*Pingreq) Type() Type { return PINGREQ }

// Pingresp is a PINGRESP packet (section 3.13).
type Pingresp struct{ Meta }

func (*Pingresp) Type() Type { return PINGRESP }

// Disconnect is a DISCONNECT packet (section 3.14).
type Disconnect struct {
	Meta
	Reason     Reason
	Properties Properties
}

func (*Disconnect) Type() Type { return DISCONNECT }

// Auth is an AUTH packet (section 3.15).
type Auth struct {
	Meta
	Reason     Reason
	Properties Properties
}

func (*Auth) Type() Type { return AUTH }

// Describe is a one-line account of p for test failures: its type, the
// fields that matter and its properties.
func Describe(p Packet) string {
	var b strings.Builder
	b.WriteString(p.Type().String())
	switch p := p.(type) {
	case *Connack:
		fmt.Fprintf(&b, " session-present=%v reason=%v", p.SessionPresent, p.Reason)
		b.WriteString(describeProps(&p.Properties))
	case *Publish:
		fmt.Fprintf(&b, " topic=%q", p.Topic)
		if p.TopicOnWire != p.Topic {
			fmt.Fprintf(&b, " (on the wire %q)", p.TopicOnWire)
		}
		fmt.Fprintf(&b, " qos=%d retain=%v dup=%v id=%d payload=%q", p.QoS, p.Retain, p.Dup, p.PacketID, p.Payload)
		b.WriteString(describeProps(&p.Properties))
	case *Ack:
		fmt.Fprintf(&b, " id=%d reason=%v", p.PacketID, p.Reason)
		b.WriteString(describeProps(&p.Properties))
	case *Suback:
		fmt.Fprintf(&b, " id=%d reasons=%v", p.PacketID, p.Reasons)
		b.WriteString(describeProps(&p.Properties))
	case *Unsuback:
		fmt.Fprintf(&b, " id=%d reasons=%v", p.PacketID, p.Reasons)
		b.WriteString(describeProps(&p.Properties))
	case *Disconnect:
		fmt.Fprintf(&b, " reason=%v", p.Reason)
		b.WriteString(describeProps(&p.Properties))
	case *Auth:
		fmt.Fprintf(&b, " reason=%v", p.Reason)
		b.WriteString(describeProps(&p.Properties))
	}
	if m := p.meta(); len(m.Raw) > 0 {
		raw := m.Raw
		suffix := ""
		if len(raw) > 64 {
			raw, suffix = raw[:64], "..."
		}
		fmt.Fprintf(&b, " bytes=% x%s", raw, suffix)
	}
	return b.String()
}

func describeProps(p *Properties) string {
	var parts []string
	add := func(name string, v any) { parts = append(parts, fmt.Sprintf("%s=%v", name, v)) }
	if p.PayloadFormat != nil {
		add("payload-format", *p.PayloadFormat)
	}
	if p.MessageExpiry != nil {
		add("message-expiry", *p.MessageExpiry)
	}
	if p.ContentType != nil {
		add("content-type", fmt.Sprintf("%q", *p.ContentType))
	}
	if p.ResponseTopic != nil {
		add("response-topic", fmt.Sprintf("%q", *p.ResponseTopic))
	}
	if p.HasCorrelationData() {
		add("correlation-data", fmt.Sprintf("%x", p.CorrelationData))
	}
	if p.SubscriptionIDs != nil {
		add("subscription-ids", p.SubscriptionIDs)
	}
	if p.SessionExpiry != nil {
		add("session-expiry", *p.SessionExpiry)
	}
	if p.AssignedClientID != nil {
		add("assigned-client-id", fmt.Sprintf("%q", *p.AssignedClientID))
	}
	if p.ServerKeepAlive != nil {
		add("server-keep-alive", *p.ServerKeepAlive)
	}
	if p.AuthMethod != nil {
		add("auth-method", fmt.Sprintf("%q", *p.AuthMethod))
	}
	if p.AuthData != nil {
		add("auth-data", fmt.Sprintf("%x", p.AuthData))
	}
	if p.RequestProblemInfo != nil {
		add("request-problem-info", *p.RequestProblemInfo)
	}
	if p.WillDelay != nil {
		add("will-delay", *p.WillDelay)
	}
	if p.RequestResponseInfo != nil {
		add("request-response-info", *p.RequestResponseInfo)
	}
	if p.ResponseInfo != nil {
		add("response-info", fmt.Sprintf("%q", *p.ResponseInfo))
	}
	if p.ServerReference != nil {
		add("server-reference", fmt.Sprintf("%q", *p.ServerReference))
	}
	if p.ReasonString != nil {
		add("reason-string", fmt.Sprintf("%q", *p.ReasonString))
	}
	if p.ReceiveMaximum != nil {
		add("receive-maximum", *p.ReceiveMaximum)
	}
	if p.TopicAliasMaximum != nil {
		add("topic-alias-maximum", *p.TopicAliasMaximum)
	}
	if p.TopicAlias != nil {
		add("topic-alias", *p.TopicAlias)
	}
	if p.MaximumQoS != nil {
		add("maximum-qos", *p.MaximumQoS)
	}
	if p.RetainAvailable != nil {
		add("retain-available", *p.RetainAvailable)
	}
	for _, u := range p.User {
		add("user", fmt.Sprintf("%q:%q", u.Key, u.Value))
	}
	if p.MaximumPacketSize != nil {
		add("maximum-packet-size", *p.MaximumPacketSize)
	}
	if p.WildcardSubAvailable != nil {
		add("wildcard-sub-available", *p.WildcardSubAvailable)
	}
	if p.SubIDAvailable != nil {
		add("sub-id-available", *p.SubIDAvailable)
	}
	if p.SharedSubAvailable != nil {
		add("shared-sub-available", *p.SharedSubAvailable)
	}
	if len(parts) == 0 {
		return ""
	}
	return " {" + strings.Join(parts, " ") + "}"
}

// HasCorrelationData reports whether the Correlation Data property is
// present (it may be present and empty: the decoder gives an empty non-nil
// slice).
func (p *Properties) HasCorrelationData() bool { return p.CorrelationData != nil }

// IsEmpty reports whether no property is present.
func (p *Properties) IsEmpty() bool { return describeProps(p) == "" }
