package mqtt5test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// maxVarInt is the largest Variable Byte Integer (section 1.5.5).
const maxVarInt = 268_435_455

// appendVarInt appends v as a Variable Byte Integer (section 1.5.5).
func appendVarInt(b []byte, v int) []byte {
	for {
		d := byte(v % 128)
		v /= 128
		if v > 0 {
			d |= 0x80
		}
		b = append(b, d)
		if v == 0 {
			return b
		}
	}
}

func appendUint16(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }
func appendUint32(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

// appendString appends a UTF-8 Encoded String (section 1.5.4). The encoder
// does not check the text: a test may want to send bad UTF-8 on purpose.
func appendString(b []byte, s string) ([]byte, error) {
	if len(s) > math.MaxUint16 {
		return b, fmt.Errorf("string of %d bytes: longer than 65,535", len(s))
	}
	return append(appendUint16(b, uint16(len(s))), s...), nil
}

// appendBinary appends Binary Data (section 1.5.6).
func appendBinary(b []byte, d []byte) ([]byte, error) {
	if len(d) > math.MaxUint16 {
		return b, fmt.Errorf("binary data of %d bytes: longer than 65,535", len(d))
	}
	return append(appendUint16(b, uint16(len(d))), d...), nil
}

// willProps stands for the Will Properties of a CONNECT in the property
// table: packet type 0 is reserved, so no packet has it.
const willProps Type = 0

// propKind is how a property's value is encoded.
type propKind byte

const (
	kByte propKind = iota
	kUint16
	kUint32
	kVarInt
	kString
	kBinary
	kPair
)

// propSpec is one row of the property table (section 2.2.2.2).
type propSpec struct {
	id    byte
	name  string
	kind  propKind
	where []Type
}

var propTable = []propSpec{
	{0x01, "Payload Format Indicator", kByte, []Type{PUBLISH, willProps}},
	{0x02, "Message Expiry Interval", kUint32, []Type{PUBLISH, willProps}},
	{0x03, "Content Type", kString, []Type{PUBLISH, willProps}},
	{0x08, "Response Topic", kString, []Type{PUBLISH, willProps}},
	{0x09, "Correlation Data", kBinary, []Type{PUBLISH, willProps}},
	{0x0B, "Subscription Identifier", kVarInt, []Type{PUBLISH, SUBSCRIBE}},
	{0x11, "Session Expiry Interval", kUint32, []Type{CONNECT, CONNACK, DISCONNECT}},
	{0x12, "Assigned Client Identifier", kString, []Type{CONNACK}},
	{0x13, "Server Keep Alive", kUint16, []Type{CONNACK}},
	{0x15, "Authentication Method", kString, []Type{CONNECT, CONNACK, AUTH}},
	{0x16, "Authentication Data", kBinary, []Type{CONNECT, CONNACK, AUTH}},
	{0x17, "Request Problem Information", kByte, []Type{CONNECT}},
	{0x18, "Will Delay Interval", kUint32, []Type{willProps}},
	{0x19, "Request Response Information", kByte, []Type{CONNECT}},
	{0x1A, "Response Information", kString, []Type{CONNACK}},
	{0x1C, "Server Reference", kString, []Type{CONNACK, DISCONNECT}},
	{0x1F, "Reason String", kString, []Type{CONNACK, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, DISCONNECT, AUTH}},
	{0x21, "Receive Maximum", kUint16, []Type{CONNECT, CONNACK}},
	{0x22, "Topic Alias Maximum", kUint16, []Type{CONNECT, CONNACK}},
	{0x23, "Topic Alias", kUint16, []Type{PUBLISH}},
	{0x24, "Maximum QoS", kByte, []Type{CONNACK}},
	{0x25, "Retain Available", kByte, []Type{CONNACK}},
	{0x26, "User Property", kPair, []Type{CONNECT, CONNACK, PUBLISH, willProps, PUBACK, PUBREC, PUBREL, PUBCOMP,
		SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, DISCONNECT, AUTH}},
	{0x27, "Maximum Packet Size", kUint32, []Type{CONNECT, CONNACK}},
	{0x28, "Wildcard Subscription Available", kByte, []Type{CONNACK}},
	{0x29, "Subscription Identifier Available", kByte, []Type{CONNACK}},
	{0x2A, "Shared Subscription Available", kByte, []Type{CONNACK}},
}

func propByID(id byte) (propSpec, bool) {
	for _, s := range propTable {
		if s.id == id {
			return s, true
		}
	}
	return propSpec{}, false
}

func whereName(t Type) string {
	if t == willProps {
		return "the Will Properties"
	}
	return "a " + t.String()
}

// propValues lists the properties present in p, in the order of their
// identifiers, as (identifier, value) pairs; a repeated property (User
// Property, Subscription Identifier) appears once per value.
func propValues(p *Properties) []propValue {
	var vs []propValue
	addByte := func(id byte, v *byte) {
		if v != nil {
			vs = append(vs, propValue{id: id, n: uint32(*v)})
		}
	}
	add16 := func(id byte, v *uint16) {
		if v != nil {
			vs = append(vs, propValue{id: id, n: uint32(*v)})
		}
	}
	add32 := func(id byte, v *uint32) {
		if v != nil {
			vs = append(vs, propValue{id: id, n: *v})
		}
	}
	addStr := func(id byte, v *string) {
		if v != nil {
			vs = append(vs, propValue{id: id, s: *v})
		}
	}
	addBin := func(id byte, v []byte) {
		if v != nil {
			vs = append(vs, propValue{id: id, s: string(v)})
		}
	}
	addByte(0x01, p.PayloadFormat)
	add32(0x02, p.MessageExpiry)
	addStr(0x03, p.ContentType)
	addStr(0x08, p.ResponseTopic)
	addBin(0x09, p.CorrelationData)
	for _, id := range p.SubscriptionIDs {
		vs = append(vs, propValue{id: 0x0B, n: uint32(id), neg: id < 0})
	}
	add32(0x11, p.SessionExpiry)
	addStr(0x12, p.AssignedClientID)
	add16(0x13, p.ServerKeepAlive)
	addStr(0x15, p.AuthMethod)
	addBin(0x16, p.AuthData)
	addByte(0x17, p.RequestProblemInfo)
	add32(0x18, p.WillDelay)
	addByte(0x19, p.RequestResponseInfo)
	addStr(0x1A, p.ResponseInfo)
	addStr(0x1C, p.ServerReference)
	addStr(0x1F, p.ReasonString)
	add16(0x21, p.ReceiveMaximum)
	add16(0x22, p.TopicAliasMaximum)
	add16(0x23, p.TopicAlias)
	addByte(0x24, p.MaximumQoS)
	addByte(0x25, p.RetainAvailable)
	for _, u := range p.User {
		vs = append(vs, propValue{id: 0x26, s: u.Key, s2: u.Value})
	}
	add32(0x27, p.MaximumPacketSize)
	addByte(0x28, p.WildcardSubAvailable)
	addByte(0x29, p.SubIDAvailable)
	addByte(0x2A, p.SharedSubAvailable)
	return vs
}

type propValue struct {
	id    byte
	n     uint32
	neg   bool
	s, s2 string
}

// appendProps appends p as the properties of a packet of type where:
// Property Length, then each property. A property that type may not carry
// is an error.
func appendProps(b []byte, p *Properties, where Type) ([]byte, error) {
	var body []byte
	var err error
	for _, v := range propValues(p) {
		spec, _ := propByID(v.id)
		if !slices.Contains(spec.where, where) {
			return b, fmt.Errorf("%s (0x%02X) is not allowed in %s", spec.name, spec.id, whereName(where))
		}
		body = appendVarInt(body, int(v.id))
		switch spec.kind {
		case kByte:
			body = append(body, byte(v.n))
		case kUint16:
			body = appendUint16(body, uint16(v.n))
		case kUint32:
			body = appendUint32(body, v.n)
		case kVarInt:
			if v.neg || v.n == 0 || v.n > maxVarInt {
				return b, fmt.Errorf("subscription identifier %d out of 1..%d", v.n, maxVarInt)
			}
			body = appendVarInt(body, int(v.n))
		case kString:
			body, err = appendString(body, v.s)
		case kBinary:
			body, err = appendBinary(body, []byte(v.s))
		case kPair:
			if body, err = appendString(body, v.s); err == nil {
				body, err = appendString(body, v.s2)
			}
		}
		if err != nil {
			return b, fmt.Errorf("%s: %w", spec.name, err)
		}
	}
	if where == SUBSCRIBE && len(p.SubscriptionIDs) > 1 {
		return b, errors.New("a SUBSCRIBE carries at most one Subscription Identifier")
	}
	return append(appendVarInt(b, len(body)), body...), nil
}

// Encode returns p's bytes on the wire. It checks what a broker cannot be
// asked to judge (lengths, which properties a packet may carry, a packet
// identifier where one is needed), and nothing else: a test may encode a
// packet that breaks other rules to see how the broker answers.
func Encode(p Packet) ([]byte, error) {
	var (
		flags byte
		body  []byte
		err   error
	)
	switch p := p.(type) {
	case *Connect:
		body, err = encodeConnect(p)
	case *Connack:
		body = []byte{0, byte(p.Reason)}
		if p.SessionPresent {
			body[0] = 1
		}
		body, err = appendProps(body, &p.Properties, CONNACK)
	case *Publish:
		if p.QoS > 2 {
			return nil, fmt.Errorf("PUBLISH with QoS %d", p.QoS)
		}
		flags = p.QoS << 1
		if p.Dup {
			flags |= 0x08
		}
		if p.Retain {
			flags |= 0x01
		}
		if body, err = appendString(body, p.Topic); err != nil {
			break
		}
		if p.QoS > 0 {
			if p.PacketID == 0 {
				return nil, errors.New("a PUBLISH of QoS 1 or 2 needs a packet identifier")
			}
			body = appendUint16(body, p.PacketID)
		}
		if body, err = appendProps(body, &p.Properties, PUBLISH); err == nil {
			body = append(body, p.Payload...)
		}
	case *Ack:
		if p.Kind < PUBACK || p.Kind > PUBCOMP {
			return nil, fmt.Errorf("an Ack of type %v", p.Kind)
		}
		if p.Kind == PUBREL {
			flags = 0x02
		}
		body = appendUint16(nil, p.PacketID)
		// The Reason Code and Property Length may be left out when they are
		// Success and none (section 3.4.2.1): written only when needed.
		if !p.Properties.IsEmpty() {
			body = append(body, byte(p.Reason))
			body, err = appendProps(body, &p.Properties, p.Kind)
		} else if p.Reason != Success {
			body = append(body, byte(p.Reason))
		}
	case *Subscribe:
		flags = 0x02
		if len(p.Subscriptions) == 0 {
			return nil, errors.New("a SUBSCRIBE without a topic filter")
		}
		body = appendUint16(nil, p.PacketID)
		if body, err = appendProps(body, &p.Properties, SUBSCRIBE); err != nil {
			break
		}
		for _, s := range p.Subscriptions {
			if body, err = appendString(body, s.Filter); err != nil {
				break
			}
			opts := s.QoS | s.RetainHandling<<4
			if s.NoLocal {
				opts |= 0x04
			}
			if s.RetainAsPublished {
				opts |= 0x08
			}
			body = append(body, opts)
		}
	case *Suback:
		body = appendUint16(nil, p.PacketID)
		if body, err = appendProps(body, &p.Properties, SUBACK); err == nil {
			for _, r := range p.Reasons {
				body = append(body, byte(r))
			}
		}
	case *Unsubscribe:
		flags = 0x02
		if len(p.Filters) == 0 {
			return nil, errors.New("an UNSUBSCRIBE without a topic filter")
		}
		body = appendUint16(nil, p.PacketID)
		if body, err = appendProps(body, &p.Properties, UNSUBSCRIBE); err != nil {
			break
		}
		for _, f := range p.Filters {
			if body, err = appendString(body, f); err != nil {
				break
			}
		}
	case *Unsuback:
		body = appendUint16(nil, p.PacketID)
		if body, err = appendProps(body, &p.Properties, UNSUBACK); err == nil {
			for _, r := range p.Reasons {
				body = append(body, byte(r))
			}
		}
	case *Pingreq, *Pingresp:
	case *Disconnect:
		body, err = encodeReasonAndProps(p.Reason, &p.Properties, DISCONNECT)
	case *Auth:
		body, err = encodeReasonAndProps(p.Reason, &p.Properties, AUTH)
	default:
		return nil, fmt.Errorf("cannot encode %T", p)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %v: %w", p.Type(), err)
	}
	if len(body) > maxVarInt {
		return nil, fmt.Errorf("encode %v: %d bytes, more than MQTT allows", p.Type(), len(body))
	}
	out := appendVarInt([]byte{byte(p.Type())<<4 | flags}, len(body))
	return append(out, body...), nil
}

// encodeReasonAndProps is the variable header of DISCONNECT and AUTH: both
// left out when Success and no properties.
func encodeReasonAndProps(r Reason, p *Properties, where Type) ([]byte, error) {
	if r == Success && p.IsEmpty() {
		return nil, nil
	}
	return appendProps([]byte{byte(r)}, p, where)
}

func encodeConnect(p *Connect) ([]byte, error) {
	name, level := p.ProtocolName, p.ProtocolLevel
	if name == "" {
		name = "MQTT"
	}
	if level == 0 {
		level = 5
	}
	body, err := appendString(nil, name)
	if err != nil {
		return nil, err
	}
	body = append(body, level)
	var flags byte
	if p.CleanStart {
		flags |= 0x02
	}
	if w := p.Will; w != nil {
		flags |= 0x04 | w.QoS<<3
		if w.Retain {
			flags |= 0x20
		}
	}
	if p.Password != nil {
		flags |= 0x40
	}
	if p.Username != nil {
		flags |= 0x80
	}
	body = append(body, flags)
	body = appendUint16(body, p.KeepAlive)
	if body, err = appendProps(body, &p.Properties, CONNECT); err != nil {
		return nil, err
	}
	if body, err = appendString(body, p.ClientID); err != nil {
		return nil, err
	}
	if w := p.Will; w != nil {
		if body, err = appendProps(body, &w.Properties, willProps); err != nil {
			return nil, err
		}
		if body, err = appendString(body, w.Topic); err != nil {
			return nil, err
		}
		if body, err = appendBinary(body, w.Payload); err != nil {
			return nil, err
		}
	}
	if p.Username != nil {
		if body, err = appendString(body, *p.Username); err != nil {
			return nil, err
		}
	}
	if p.Password != nil {
		if body, err = appendBinary(body, p.Password); err != nil {
			return nil, err
		}
	}
	return body, nil
}

// MustEncode is Encode for packets known to be encodable; it panics otherwise.
func MustEncode(p Packet) []byte {
	b, err := Encode(p)
	if err != nil {
		panic(err)
	}
	return b
}
