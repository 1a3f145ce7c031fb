package mqtt5test

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrMalformed is wrapped by every error of Decode and ReadPacket about the
// packet's bytes.
var ErrMalformed = errors.New("malformed packet")

// validReasons are the reason codes each packet a server sends may carry
// (section 2.4 and the sections of each packet).
var validReasons = map[Type][]Reason{
	CONNACK: {0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95,
		0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F},
	PUBACK:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	PUBREC:   {0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99},
	PUBREL:   {0x00, 0x92},
	PUBCOMP:  {0x00, 0x92},
	SUBACK:   {0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2},
	UNSUBACK: {0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91},
	// A server's DISCONNECT: 0x04 Disconnect with Will Message is the
	// client's alone (section 3.14.2.1).
	DISCONNECT: {0x00, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
		0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2},
	AUTH: {0x00, 0x18, 0x19},
}

// ReadPacket reads one whole packet from r: its fixed header, checked
// (a Remaining Length in at most four bytes, and in as few as possible),
// and its Remaining Length of bytes. A packet longer than maxSize bytes
// (when maxSize > 0) is an error, read no further.
func ReadPacket(r *bufio.Reader, maxSize int) ([]byte, error) {
	first, err := r.ReadByte()
	if err != nil {
		return nil, err
	}
	header := []byte{first}
	length, mult := 0, 1
	for i := 0; ; i++ {
		if i == 4 {
			return header, fmt.Errorf("%w: Remaining Length longer than four bytes (% x)", ErrMalformed, header)
		}
		d, err := r.ReadByte()
		if err != nil {
			return header, unexpectedEOF(err)
		}
		header = append(header, d)
		length += int(d&0x7F) * mult
		mult *= 128
		if d&0x80 == 0 {
			if d == 0 && i > 0 {
				return header, fmt.Errorf("%w: Remaining Length not in its shortest form (% x)", ErrMalformed, header)
			}
			break
		}
	}
	if maxSize > 0 && len(header)+length > maxSize {
		return header, &TooLargeError{Size: len(header) + length, Max: maxSize, Header: header}
	}
	pk := make([]byte, len(header)+length)
	copy(pk, header)
	if _, err := io.ReadFull(r, pk[len(header):]); err != nil {
		return pk, unexpectedEOF(err)
	}
	return pk, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// TooLargeError is a packet larger than the client's Maximum Packet Size.
type TooLargeError struct {
	Size, Max int
	Header    []byte
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("a packet of %d bytes (header % x), more than the Maximum Packet Size of %d", e.Size, e.Header, e.Max)
}

// Decode parses one whole packet (fixed header included) as a server sends
// it, strictly: see the package documentation for what is checked. A packet
// type only clients send is an error.
func Decode(b []byte) (Packet, error) {
	p, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (bytes % x)", ErrMalformed, err, truncate(b, 64))
	}
	*p.meta() = Meta{Raw: b}
	return p, nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

func decode(b []byte) (Packet, error) {
	r := &reader{b: b}
	first := r.byte()
	length := r.varInt()
	if r.err != nil {
		return nil, r.err
	}
	if length != len(b)-r.off {
		return nil, fmt.Errorf("the Remaining Length says %d, but %d bytes follow", length, len(b)-r.off)
	}
	typ, flags := Type(first>>4), first&0x0F
	wantFlags := byte(0)
	switch typ {
	case PUBLISH:
		wantFlags = flags // checked below
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		wantFlags = 0x02
	}
	if flags != wantFlags {
		return nil, fmt.Errorf("%v with fixed header flags %04b, want %04b", typ, flags, wantFlags)
	}
	var (
		p   Packet
		err error
	)
	switch typ {
	case CONNACK:
		p, err = decodeConnack(r)
	case PUBLISH:
		p, err = decodePublish(r, flags)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p, err = decodeAck(r, typ)
	case SUBACK, UNSUBACK:
		p, err = decodeSubOrUnsuback(r, typ)
	case PINGRESP:
		p = &Pingresp{}
	case DISCONNECT:
		d := &Disconnect{}
		d.Reason, d.Properties, err = decodeReasonAndProps(r, DISCONNECT)
		p = d
	case AUTH:
		a := &Auth{}
		a.Reason, a.Properties, err = decodeReasonAndProps(r, AUTH)
		p = a
	case CONNECT, SUBSCRIBE, UNSUBSCRIBE, PINGREQ:
		return nil, fmt.Errorf("a %v, which only clients send", typ)
	default:
		return nil, fmt.Errorf("packet type %d, which is reserved", byte(typ))
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %w", typ, err)
	}
	if r.err != nil { // a field cut short
		return nil, fmt.Errorf("%v: %w", typ, r.err)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%v: %d bytes left over", typ, len(b)-r.off)
	}
	return p, nil
}

func checkReason(typ Type, r Reason) error {
	if !slices.Contains(validReasons[typ], r) {
		return fmt.Errorf("reason code %v is not allowed in a server's %v", r, typ)
	}
	return nil
}

func decodeConnack(r *reader) (Packet, error) {
	c := &Connack{}
	if r.left() < 3 {
		// An MQTT 3.1.1 CONNACK is two bytes; MQTT 5 always has the Property Length.
		return nil, fmt.Errorf("%d bytes after the fixed header: no Property Length (the MQTT 3.1.1 form?)", r.left())
	}
	ackFlags := r.byte()
	if ackFlags&^1 != 0 {
		return nil, fmt.Errorf("reserved Connect Acknowledge Flags set (%08b)", ackFlags)
	}
	c.SessionPresent = ackFlags == 1
	c.Reason = Reason(r.byte())
	if r.err != nil {
		return nil, r.err
	}
	if err := checkReason(CONNACK, c.Reason); err != nil {
		return nil, err
	}
	if c.Reason >= 0x80 && c.SessionPresent {
		return nil, fmt.Errorf("the Session Present flag is set with reason code %v", c.Reason) // [MQTT-3.2.2-6]
	}
	c.Properties = r.props(CONNACK)
	return c, nil
}

func decodePublish(r *reader, flags byte) (Packet, error) {
	p := &Publish{
		Dup:    flags&0x08 != 0,
		QoS:    flags >> 1 & 3,
		Retain: flags&0x01 != 0,
	}
	if p.QoS == 3 {
		return nil, errors.New("QoS 3") // [MQTT-3.3.1-4]
	}
	if p.Dup && p.QoS == 0 {
		return nil, errors.New("DUP set on a QoS 0 message") // [MQTT-3.3.1-2]
	}
	p.Topic = r.str("Topic Name")
	p.TopicOnWire = p.Topic
	if p.QoS > 0 {
		p.PacketID = r.packetID()
	}
	p.Properties = r.props(PUBLISH)
	if r.err != nil {
		return nil, r.err
	}
	if strings.ContainsAny(p.Topic, "+#") {
		return nil, fmt.Errorf("wildcard in Topic Name %q", p.Topic) // [MQTT-3.3.2-2]
	}
	if p.Topic == "" && p.Properties.TopicAlias == nil {
		return nil, errors.New("empty Topic Name without a Topic Alias") // [MQTT-3.3.2-1]
	}
	p.Payload = r.rest()
	if f := p.Properties.PayloadFormat; f != nil && *f == 1 && !validUTF8(string(p.Payload)) {
		return nil, fmt.Errorf("the Payload Format Indicator is 1 on a payload that is not UTF-8 (%q)", p.Payload)
	}
	return p, nil
}

func decodeAck(r *reader, typ Type) (Packet, error) {
	a := &Ack{Kind: typ, PacketID: r.packetID()}
	switch r.left() {
	case 0:
		a.Short = true
	case 1:
		a.Reason = Reason(r.byte())
	default:
		a.Reason = Reason(r.byte())
		a.Properties = r.props(typ)
	}
	if r.err != nil {
		return nil, r.err
	}
	return a, checkReason(typ, a.Reason)
}

func decodeSubOrUnsuback(r *reader, typ Type) (Packet, error) {
	id := r.packetID()
	props := r.props(typ)
	if r.err != nil {
		return nil, r.err
	}
	if r.left() == 0 {
		return nil, errors.New("no reason code")
	}
	var reasons []Reason
	for _, b := range r.rest() {
		if err := checkReason(typ, Reason(b)); err != nil {
			return nil, err
		}
		reasons = append(reasons, Reason(b))
	}
	if typ == SUBACK {
		return &Suback{PacketID: id, Properties: props, Reasons: reasons}, nil
	}
	return &Unsuback{PacketID: id, Properties: props, Reasons: reasons}, nil
}

// decodeReasonAndProps is the variable header of DISCONNECT and AUTH: a
// Remaining Length of 0 means Success, of 1 a reason code without
// properties.
func decodeReasonAndProps(r *reader, typ Type) (Reason, Properties, error) {
	var (
		reason Reason
		props  Properties
	)
	if r.left() > 0 {
		reason = Reason(r.byte())
	}
	if r.left() > 0 {
		props = r.props(typ)
	}
	if r.err != nil {
		return 0, props, r.err
	}
	return reason, props, checkReason(typ, reason)
}

// validUTF8 is the rule of section 1.5.4: well-formed UTF-8, no surrogates
// (which Go's check already refuses) and no U+0000.
func validUTF8(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsRune(s, 0)
}

// reader reads the fields of a packet; the first error sticks.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *reader) left() int { return len(r.b) - r.off }

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if r.left() < n {
		r.fail("%s: needs %d bytes, %d left", what, n, r.left())
		return nil
	}
	v := r.b[r.off : r.off+n]
	r.off += n
	return v
}

func (r *reader) byte() byte {
	if v := r.take(1, "byte"); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) uint16(what string) uint16 {
	if v := r.take(2, what); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) uint32(what string) uint32 {
	if v := r.take(4, what); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) packetID() uint16 {
	id := r.uint16("Packet Identifier")
	if r.err == nil && id == 0 {
		r.fail("Packet Identifier 0") // [MQTT-2.2.1-3]
	}
	return id
}

// varInt reads a Variable Byte Integer: at most four bytes, the shortest
// form (section 1.5.5).
func (r *reader) varInt() int {
	v, mult := 0, 1
	for i := 0; i < 4; i++ {
		d := r.take(1, "Variable Byte Integer")
		if d == nil {
			return 0
		}
		v += int(d[0]&0x7F) * mult
		mult *= 128
		if d[0]&0x80 == 0 {
			if d[0] == 0 && i > 0 {
				r.fail("Variable Byte Integer not in its shortest form")
			}
			return v
		}
	}
	r.fail("Variable Byte Integer longer than four bytes")
	return 0
}

func (r *reader) str(what string) string {
	n := int(r.uint16(what + " length"))
	s := string(r.take(n, what))
	if r.err == nil && !validUTF8(s) {
		r.fail("%s is not valid MQTT UTF-8: %q", what, s)
	}
	return s
}

func (r *reader) bin(what string) []byte {
	n := int(r.uint16(what + " length"))
	v := r.take(n, what)
	if r.err != nil {
		return nil
	}
	return append([]byte{}, v...) // non-nil even when empty: present
}

func (r *reader) rest() []byte {
	v := r.take(r.left(), "rest")
	return append([]byte{}, v...)
}

// props reads the properties of a packet of type where, checking that each
// is allowed there, given once (but User Property, and Subscription
// Identifier in a PUBLISH), and in range.
func (r *reader) props(where Type) Properties {
	var p Properties
	n := r.varInt()
	body := r.take(n, "Properties")
	if r.err != nil {
		return p
	}
	pr := &reader{b: body}
	seen := map[byte]bool{}
	for pr.left() > 0 && pr.err == nil {
		id := pr.varInt()
		if pr.err != nil {
			break
		}
		spec, ok := propByID(byte(id))
		if !ok || id > 0xFF {
			pr.fail("unknown property identifier 0x%02X", id)
			break
		}
		if !slices.Contains(spec.where, where) {
			pr.fail("%s (0x%02X) is not allowed in %s", spec.name, spec.id, whereName(where))
			break
		}
		repeatable := spec.id == 0x26 || (spec.id == 0x0B && where == PUBLISH)
		if seen[spec.id] && !repeatable {
			pr.fail("%s (0x%02X) given more than once", spec.name, spec.id)
			break
		}
		seen[spec.id] = true
		pr.prop(&p, spec)
	}
	if pr.err != nil {
		r.fail("properties: %w", pr.err)
	}
	return p
}

func (r *reader) prop(p *Properties, spec propSpec) {
	boolean := func() *byte {
		v := r.byte()
		if r.err == nil && v > 1 {
			r.fail("%s %d, neither 0 nor 1", spec.name, v)
		}
		return &v
	}
	nonZero16 := func() *uint16 {
		v := r.uint16(spec.name)
		if r.err == nil && v == 0 {
			r.fail("%s 0", spec.name)
		}
		return &v
	}
	u16 := func() *uint16 { v := r.uint16(spec.name); return &v }
	u32 := func() *uint32 { v := r.uint32(spec.name); return &v }
	str := func() *string { v := r.str(spec.name); return &v }
	switch spec.id {
	case 0x01:
		p.PayloadFormat = boolean()
	case 0x02:
		p.MessageExpiry = u32()
	case 0x03:
		p.ContentType = str()
	case 0x08:
		p.ResponseTopic = str()
		if r.err == nil && strings.ContainsAny(*p.ResponseTopic, "+#") {
			r.fail("wildcard in Response Topic %q", *p.ResponseTopic) // [MQTT-3.3.2-14]
		}
	case 0x09:
		p.CorrelationData = r.bin(spec.name)
	case 0x0B:
		v := r.varInt()
		if r.err == nil && v == 0 {
			r.fail("Subscription Identifier 0")
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
	case 0x11:
		p.SessionExpiry = u32()
	case 0x12:
		p.AssignedClientID = str()
	case 0x13:
		p.ServerKeepAlive = u16()
	case 0x15:
		p.AuthMethod = str()
	case 0x16:
		p.AuthData = r.bin(spec.name)
	case 0x17:
		p.RequestProblemInfo = boolean()
	case 0x18:
		p.WillDelay = u32()
	case 0x19:
		p.RequestResponseInfo = boolean()
	case 0x1A:
		p.ResponseInfo = str()
	case 0x1C:
		p.ServerReference = str()
	case 0x1F:
		p.ReasonString = str()
	case 0x21:
		p.ReceiveMaximum = nonZero16()
	case 0x22:
		p.TopicAliasMaximum = u16()
	case 0x23:
		p.TopicAlias = nonZero16()
	case 0x24:
		p.MaximumQoS = boolean() // 0 or 1: a server that has QoS 2 says nothing
	case 0x25:
		p.RetainAvailable = boolean()
	case 0x26:
		k := r.str("User Property name")
		v := r.str("User Property value")
		p.User = append(p.User, UserProperty{k, v})
	case 0x27:
		v := r.uint32(spec.name)
		if r.err == nil && v == 0 {
			r.fail("Maximum Packet Size 0")
		}
		p.MaximumPacketSize = &v
	case 0x28:
		p.WildcardSubAvailable = boolean()
	case 0x29:
		p.SubIDAvailable = boolean()
	case 0x2A:
		p.SharedSubAvailable = boolean()
	}
}
