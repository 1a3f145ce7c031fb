// SPDX-License-Identifier: MIT
// SPDX-FileCopyrightText: 2023 mochi-mqtt, mochi-co
// SPDX-FileContributor: mochi-co

package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/xid"

	"github.com/mochi-mqtt/server/v2/mempool"
	"github.com/mochi-mqtt/server/v2/packets"
)

const (
	defaultKeepalive             uint16 = 10 // the default connection keepalive value in seconds.
	defaultClientProtocolVersion byte   = 4  // the default mqtt protocol version of connecting clients (if somehow unspecified).
	minimumKeepalive             uint16 = 5  // the minimum recommended keepalive - values under with display a warning.
)

var (
	ErrMinimumKeepalive = errors.New("client keepalive is below minimum recommended value and may exhibit connection instability")
)

// ReadFn is the function signature for the function used for reading and processing new packets.
type ReadFn func(*Client, packets.Packet) error

// Clients contains a map of the clients known by the broker.
type Clients struct {
	internal map[string]*Client // clients known by the broker, keyed on client id.
	sync.RWMutex
}

// NewClients returns an instance of Clients.
func NewClients() *Clients {
	return &Clients{
		internal: make(map[string]*Client),
	}
}

// Add adds a new client to the clients map, keyed on client id.
func (cl *Clients) Add(val *Client) {
	cl.Lock()
	defer cl.Unlock()
	cl.internal[val.ID] = val
}

// GetAll returns all the clients.
func (cl *Clients) GetAll() map[string]*Client {
	cl.RLock()
	defer cl.RUnlock()
	m := map[string]*Client{}
	for k, v := range cl.internal {
		m[k] = v
	}
	return m
}

// Range calls f for each client, until f returns false, under the read
// lock: f must not add or delete clients. Unlike GetAll it copies nothing,
// for the sweeps that run every second over every client.
func (cl *Clients) Range(f func(*Client) bool) {
	cl.RLock()
	defer cl.RUnlock()
	for _, v := range cl.internal {
		if !f(v) {
			return
		}
	}
}

// Get returns the value of a client if it exists.
func (cl *Clients) Get(id string) (*Client, bool) {
	cl.RLock()
	defer cl.RUnlock()
	val, ok := cl.internal[id]
	return val, ok
}

// Len returns the length of the clients map.
func (cl *Clients) Len() int {
	cl.RLock()
	defer cl.RUnlock()
	val := len(cl.internal)
	return val
}

// Delete removes a client from the internal map.
func (cl *Clients) Delete(id string) {
	cl.Lock()
	defer cl.Unlock()
	delete(cl.internal, id)
}

// GetByListener returns clients matching a listener id.
func (cl *Clients) GetByListener(id string) []*Client {
	cl.RLock()
	defer cl.RUnlock()
	clients := make([]*Client, 0, cl.Len())
	for _, client := range cl.internal {
		if client.Net.Listener == id && !client.Closed() {
			clients = append(clients, client)
		}
	}
	return clients
}

// Client contains information about a client known by the broker.
type Client struct {
	Properties   ClientProperties // client properties
	State        ClientState      // the operational state of the client.
	Net          ClientConnection // network connection state of the client
	ID           string           // the client id.
	ops          *ops             // ops provides a reference to server ops.
	sync.RWMutex                  // mutex

	// When Read last moved the connection's deadline on, and for which
	// keepalive (see refreshDeadlineLazily); the reading goroutine's own.
	deadlineSet       time.Time
	deadlineKeepalive uint16
}

// ClientConnection contains the connection transport and metadata for the client.
type ClientConnection struct {
	Conn     net.Conn      // the net.Conn used to establish the connection
	bconn    *packetReader // reads packets, with a buffer only while there are bytes in it
	Remote   string        // the remote address of the client
	Listener string        // listener id of the client
	Inline   bool          // if true, the client is the built-in 'inline' embedded client
}

// ClientProperties contains the properties which define the client behaviour.
//
// The CONNECT's MQTT 5 properties (256 bytes) and its Will (144) are kept
// behind pointers, allocated only for a client that has them (patch 41):
// most devices are MQTT 3.1.1 clients without a Will, and the 400 bytes
// were half of what an idle one cost. Read them with Props and Will, which
// never return nil; write them with SetProps and SetWill.
type ClientProperties struct {
	props           *packets.Properties // nil: none (all zero); allocated for every MQTT 5 client
	will            *Will               // nil: no Will
	Username        []byte
	ProtocolVersion byte
	Clean           bool
}

// Shared zero values that Props and Will return for a client without
// properties or a Will. Nothing writes to them.
var (
	noProps packets.Properties
	noWill  Will
)

// Props returns the client's CONNECT properties (the zero Properties if it
// had none), for reading only: it may be a value shared by all clients.
// Change them with SetProps.
func (p *ClientProperties) Props() *packets.Properties {
	if p.props == nil {
		return &noProps
	}
	return p.props
}

// SetProps sets the client's CONNECT properties; all zero, it keeps none.
func (p *ClientProperties) SetProps(props packets.Properties) {
	if isZero(&props) {
		p.props = nil
		return
	}
	p.props = &props
}

// editProps returns the client's own properties to change in place,
// allocating them if it has none.
func (p *ClientProperties) editProps() *packets.Properties {
	if p.props == nil {
		p.props = new(packets.Properties)
	}
	return p.props
}

// Will returns the client's Will (the zero Will, its Flag 0, if it has
// none), for reading only: it may be a value shared by all clients. Change
// it with SetWill.
func (p *ClientProperties) Will() *Will {
	if p.will == nil {
		return &noWill
	}
	return p.will
}

// SetWill sets the client's Will; the zero Will removes it.
func (p *ClientProperties) SetWill(w Will) {
	if isZero(&w) {
		p.will = nil
		return
	}
	p.will = &w
}

// isZero reports whether *v is its type's zero value (nil slices included).
func isZero[T any](v *T) bool {
	return reflect.ValueOf(v).Elem().IsZero()
}

// Will contains the last will and testament details for a client connection.
type Will struct {
	Payload           []byte                 // -
	User              []packets.UserProperty // -
	TopicName         string                 // -
	Flag              uint32                 // 0,1
	WillDelayInterval uint32                 // -
	Qos               byte                   // -
	Retain            bool                   // -

	// The Will's other properties, passed on with it [MQTT-3.1.3-10].
	PayloadFormat         byte   // -
	PayloadFormatFlag     bool   // -
	ContentType           string // -
	ResponseTopic         string // -
	CorrelationData       []byte // -
	MessageExpiryInterval uint32 // -
}

// ClientState tracks the state of the client.
type ClientState struct {
	TopicAliases    TopicAliases       // a map of topic aliases
	stopCause       atomic.Value       // reason for stopping
	Inflight        *Inflight          // a map of in-flight qos messages
	Subscriptions   *Subscriptions     // a map of the subscription filters a client maintains
	disconnected    int64              // the time the client disconnected in unix time, for calculating expiry
	outbound        outbound           // queue for pending outbound packets, and its writer
	endOnce         sync.Once          // only end once
	isTakenOver     atomic.Bool        // used to identify orphaned clients
	packetID        uint32             // the current highest packetID
	open            context.Context    // indicate that the client is open for packet exchange
	cancelOpen      context.CancelFunc // cancel function for open context
	Keepalive       uint16             // the number of seconds the connection can wait
	ServerKeepalive bool               // keepalive was set by the server
}

// newClient returns a new instance of Client. This is almost exclusively used by Server
// for creating new clients, but it lives here because it's not dependent.
func newClient(c net.Conn, o *ops) *Client {
	ctx, cancel := context.WithCancel(context.Background())
	cl := &Client{
		State: ClientState{
			Inflight:      NewInflights(),
			Subscriptions: newCompactSubscriptions(),
			// TopicAliases: made by ParseConnect, for MQTT 5 clients only (patch 37)
			open:       ctx,
			cancelOpen: cancel,
			Keepalive:  defaultKeepalive,
		},
		Properties: ClientProperties{
			ProtocolVersion: defaultClientProtocolVersion, // default protocol version
		},
		ops: o,
	}

	if c != nil {
		cl.Net = ClientConnection{
			Conn:   c,
			bconn:  newPacketReader(c, o.options.ClientNetReadBufferSize),
			Remote: c.RemoteAddr().String(),
		}
	}

	return cl
}

// ParseConnect parses the connect parameters and properties for a client.
func (cl *Client) ParseConnect(lid string, pk packets.Packet) {
	cl.Net.Listener = lid

	cl.Properties.ProtocolVersion = pk.ProtocolVersion
	cl.Properties.Username = pk.Connect.Username
	cl.Properties.Clean = pk.Connect.Clean
	// Every MQTT 5 client gets properties of its own, even none: a DISCONNECT
	// may set its session expiry later, and the pointer is then not moved
	// under the goroutine that writes to the client (encodePacket).
	if own := pk.Properties.Copy(false); pk.ProtocolVersion == 5 || !isZero(&own) {
		cl.Properties.props = &own
	} else {
		cl.Properties.props = nil
	}
	props := cl.Properties.Props()

	if props.ReceiveMaximum > cl.ops.options.Capabilities.MaximumInflight { // 3.3.4 Non-normative
		cl.Properties.editProps().ReceiveMaximum = cl.ops.options.Capabilities.MaximumInflight
	}

	if pk.Connect.Keepalive <= minimumKeepalive {
		cl.ops.log.Warn(
			ErrMinimumKeepalive.Error(),
			"client", cl.ID,
			"keepalive", pk.Connect.Keepalive,
			"recommended", minimumKeepalive,
		)
	}

	cl.State.Keepalive = pk.Connect.Keepalive                                              // [MQTT-3.2.2-22]
	cl.State.Inflight.ResetReceiveQuota(int32(cl.ops.options.Capabilities.ReceiveMaximum)) // server receive max per client
	cl.State.Inflight.ResetSendQuota(int32(props.ReceiveMaximum))                          // client receive max
	cl.State.TopicAliases = TopicAliases{}                                                 // none for an MQTT 3.1.1 client (nil: as a maximum of 0), patch 37
	if cl.Properties.ProtocolVersion == 5 {
		if maximum := cl.ops.options.Capabilities.TopicAliasMaximum; maximum > 0 {
			cl.State.TopicAliases.Inbound = NewInboundTopicAliases(maximum)
		}
		if maximum := props.TopicAliasMaximum; maximum > 0 {
			cl.State.TopicAliases.Outbound = NewOutboundTopicAliases(maximum)
		}
	}

	cl.ID = pk.Connect.ClientIdentifier
	if cl.ID == "" {
		cl.ID = xid.New().String() // [MQTT-3.1.3-6] [MQTT-3.1.3-7]
		cl.Properties.editProps().AssignedClientID = cl.ID
	}

	cl.Properties.will = nil
	if pk.Connect.WillFlag {
		cl.Properties.will = &Will{
			Qos:               pk.Connect.WillQos,
			Retain:            pk.Connect.WillRetain,
			Payload:           pk.Connect.WillPayload,
			TopicName:         pk.Connect.WillTopic,
			WillDelayInterval: pk.Connect.WillProperties.WillDelayInterval,
			User:              pk.Connect.WillProperties.User,

			PayloadFormat:         pk.Connect.WillProperties.PayloadFormat,
			PayloadFormatFlag:     pk.Connect.WillProperties.PayloadFormatFlag,
			ContentType:           pk.Connect.WillProperties.ContentType,
			ResponseTopic:         pk.Connect.WillProperties.ResponseTopic,
			CorrelationData:       pk.Connect.WillProperties.CorrelationData,
			MessageExpiryInterval: pk.Connect.WillProperties.MessageExpiryInterval,
		}
		if pk.Properties.SessionExpiryIntervalFlag &&
			pk.Properties.SessionExpiryInterval < pk.Connect.WillProperties.WillDelayInterval {
			cl.Properties.will.WillDelayInterval = pk.Properties.SessionExpiryInterval
		}
		if pk.Connect.WillFlag {
			cl.Properties.will.Flag = 1 // atomic for checking
		}
	}
}

// refreshDeadline refreshes the read/write deadline for the net.Conn connection.
func (cl *Client) refreshDeadline(keepalive uint16) {
	var expiry time.Time // nil time can be used to disable deadline if keepalive = 0
	if keepalive > 0 {
		expiry = time.Now().Add(time.Duration(keepalive+(keepalive/2)) * time.Second) // [MQTT-3.1.2-22]
	}

	if cl.Net.Conn != nil {
		_ = cl.Net.Conn.SetDeadline(expiry) // [MQTT-3.1.2-22]
	}
}

// deadlineSlack is how often, at most, Read moves the connection's deadline
// on, and how much later than the keepalive asks it sets it: a deadline
// moved on every packet is two timer updates per packet, and a device that
// publishes many messages a second needs it moved about once a second.
const deadlineSlack = time.Second

// refreshDeadlineLazily is refreshDeadline for Read: it moves the deadline
// on only when deadlineSlack has passed since it last did (or the keepalive
// changed), to deadlineSlack beyond what refreshDeadline sets, so that the
// deadline is never earlier than a packet read now would set it
// [MQTT-3.1.2-22]. Only the client's reading goroutine calls it.
func (cl *Client) refreshDeadlineLazily(keepalive uint16) {
	now := time.Now()
	if keepalive == cl.deadlineKeepalive && now.Sub(cl.deadlineSet) < deadlineSlack && !cl.deadlineSet.IsZero() {
		return
	}
	cl.deadlineSet, cl.deadlineKeepalive = now, keepalive
	var expiry time.Time // no deadline when keepalive = 0
	if keepalive > 0 {
		expiry = now.Add(time.Duration(keepalive+(keepalive/2))*time.Second + deadlineSlack) // [MQTT-3.1.2-22]
	}
	if cl.Net.Conn != nil {
		_ = cl.Net.Conn.SetDeadline(expiry)
	}
}

// NextPacketID returns the next available (unused) packet id for the client.
// If no unused packet ids are available, an error is returned and the client
// should be disconnected.
func (cl *Client) NextPacketID() (i uint32, err error) {
	cl.Lock()
	defer cl.Unlock()

	i = atomic.LoadUint32(&cl.State.packetID)
	started := i
	overflowed := false
	for {
		if overflowed && i == started {
			return 0, packets.ErrQuotaExceeded
		}

		if i >= cl.ops.options.Capabilities.maximumPacketID {
			overflowed = true
			i = 0
			continue
		}

		i++

		if _, ok := cl.State.Inflight.Get(uint16(i)); !ok {
			atomic.StoreUint32(&cl.State.packetID, i)
			return i, nil
		}
	}
}

// ResendInflightMessages attempts to resend any pending inflight messages to connected clients.
func (cl *Client) ResendInflightMessages(force bool) error {
	if cl.State.Inflight.Len() == 0 {
		return nil
	}

	for _, tk := range cl.State.Inflight.GetAll(false) {
		if tk.FixedHeader.Type == packets.Pubrec {
			continue // the client's QoS 2 PUBLISH: it resends that, and gets this PUBREC again [MQTT-4.4.0-1]
		}
		if tk.FixedHeader.Type == packets.Publish {
			tk.FixedHeader.Dup = true // [MQTT-3.3.1-1] [MQTT-3.3.1-3]
		}

		cl.ops.hooks.OnQosPublish(cl, tk, tk.Created, 0)
		err := cl.WritePacket(tk)
		if err != nil {
			return err
		}

		if tk.FixedHeader.Type == packets.Puback || tk.FixedHeader.Type == packets.Pubcomp {
			if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
				cl.ops.hooks.OnQosComplete(cl, tk)
				atomic.AddInt64(&cl.ops.info.Inflight, -1)
			}
		}
	}

	return nil
}

// ClearInflights deletes all inflight messages for the client, e.g. for a disconnected user with a clean session.
func (cl *Client) ClearInflights() {
	for _, tk := range cl.State.Inflight.GetAll(false) {
		if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
			cl.ops.hooks.OnQosDropped(cl, tk)
			atomic.AddInt64(&cl.ops.info.Inflight, -1)
		}
	}
}

// ClearExpiredInflights deletes any inflight messages which have expired.
func (cl *Client) ClearExpiredInflights(now, maximumExpiry int64) []uint16 {
	deleted := []uint16{}
	for _, tk := range cl.State.Inflight.GetAll(false) {
		expired := tk.ProtocolVersion == 5 && tk.Expiry > 0 && tk.Expiry < now // [MQTT-3.3.2-5]

		// If the maximum message expiry interval is set (greater than 0), and the message
		// retention period exceeds the maximum expiry, the message will be forcibly removed.
		enforced := maximumExpiry > 0 && now-tk.Created > maximumExpiry

		if expired || enforced {
			if ok := cl.State.Inflight.Delete(tk.PacketID); ok {
				cl.ops.hooks.OnQosDropped(cl, tk)
				atomic.AddInt64(&cl.ops.info.Inflight, -1)
				deleted = append(deleted, tk.PacketID)
			}
		}
	}

	return deleted
}

// Read reads incoming packets from the connected client and transforms them into
// packets to be handled by the packetHandler.
//
// Between packets it waits for the next one at a shallow stack (the packet
// itself is read and handled in handlePacket, below this frame), so that
// the runtime shrinks an idle client's goroutine stack to its smallest.
func (cl *Client) Read(packetHandler ReadFn) error {
	for {
		if cl.Closed() {
			return cl.stoppedBetweenPackets()
		}

		cl.refreshDeadlineLazily(cl.State.Keepalive)
		var fh packets.FixedHeader
		if err := cl.ReadFixedHeader(&fh); err != nil {
			return err
		}

		if err := cl.handlePacket(&fh, packetHandler); err != nil {
			return err
		}
	}
}

// stoppedBetweenPackets is what Read returns for a client stopped while it
// was between packets: nil (a clean end, its Will deleted) after its own
// DISCONNECT, or when nothing says why; else the cause (the server ended
// the connection: an administrative action, a limit, a session taken
// over), which ends the connection as a failure to read would, Will
// included [MQTT-3.1.2-8]. Whether the reader was blocked on the socket or
// between two packets no longer decides whether the Will is sent.
func (cl *Client) stoppedBetweenPackets() error {
	cause := cl.StopCause()
	if cause == nil || errors.Is(cause, packets.CodeDisconnect) {
		return nil
	}
	return cause
}

// handlePacket reads the rest of the packet whose fixed header is fh and
// hands it to packetHandler; a SUBSCRIBE, UNSUBSCRIBE or AUTH on a fresh
// stack (onFreshStack), so that the reader does not keep the depth their
// handling takes.
//
//go:noinline
func (cl *Client) handlePacket(fh *packets.FixedHeader, packetHandler ReadFn) error {
	if handledOnFreshStack(fh.Type) {
		h := *fh // fh stays on the reader's stack: only this copy escapes
		return onFreshStack(func() error { return cl.readAndHandle(&h, packetHandler) })
	}
	return cl.readAndHandle(fh, packetHandler)
}

// readAndHandle reads the rest of the packet whose fixed header is fh and
// hands it to packetHandler.
func (cl *Client) readAndHandle(fh *packets.FixedHeader, packetHandler ReadFn) error {
	pk, err := cl.ReadPacket(fh)
	if err != nil {
		return err
	}

	return packetHandler(cl, pk) // Process inbound packet.
}

// Stop instructs the client to shut down all processing goroutines and disconnect.
func (cl *Client) Stop(err error) {
	cl.State.endOnce.Do(func() {

		if cl.Net.Conn != nil {
			_ = cl.Net.Conn.Close() // omit close error
		}

		if err != nil {
			cl.State.stopCause.Store(err)
		}

		if cl.State.cancelOpen != nil {
			cl.State.cancelOpen()
		}

		atomic.StoreInt64(&cl.State.disconnected, time.Now().Unix())
	})
}

// StopCause returns the reason the client connection was stopped, if any.
func (cl *Client) StopCause() error {
	if cl.State.stopCause.Load() == nil {
		return nil
	}
	return cl.State.stopCause.Load().(error)
}

// StopTime returns the the time the client disconnected in unix time, else zero.
func (cl *Client) StopTime() int64 {
	return atomic.LoadInt64(&cl.State.disconnected)
}

// Closed returns true if client connection is closed.
func (cl *Client) Closed() bool {
	return cl.State.open == nil || cl.State.open.Err() != nil
}

func (cl *Client) IsTakenOver() bool {
	return cl.State.isTakenOver.Load()
}

// ReadFixedHeader reads in the values of the next packet's fixed header.
func (cl *Client) ReadFixedHeader(fh *packets.FixedHeader) error {
	if cl.Net.bconn == nil {
		return ErrConnectionClosed
	}

	b, err := cl.Net.bconn.ReadByte()
	if err != nil {
		return err
	}

	err = fh.Decode(b)
	if err != nil {
		return err
	}

	var bu int
	fh.Remaining, bu, err = packets.DecodeLength(cl.Net.bconn)
	if err != nil {
		return err
	}

	if cl.ops.options.Capabilities.MaximumPacketSize > 0 && uint32(fh.Remaining+1) > cl.ops.options.Capabilities.MaximumPacketSize {
		return packets.ErrPacketTooLarge // [MQTT-3.2.2-15]
	}

	atomic.AddInt64(&cl.ops.info.BytesReceived, int64(bu+1))
	return nil
}

// ReadPacket reads the remaining buffer into an MQTT packet.
func (cl *Client) ReadPacket(fh *packets.FixedHeader) (pk packets.Packet, err error) {
	atomic.AddInt64(&cl.ops.info.PacketsReceived, 1)

	pk.ProtocolVersion = cl.Properties.ProtocolVersion // inherit client protocol version for decoding
	pk.FixedHeader = *fh
	p := make([]byte, pk.FixedHeader.Remaining)
	n, err := io.ReadFull(cl.Net.bconn, p)
	if err != nil {
		return pk, err
	}

	atomic.AddInt64(&cl.ops.info.BytesReceived, int64(n))

	// p is this packet's own (made above): decoded values may point into it.
	px := p
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectDecode(px)
	case packets.Disconnect:
		err = pk.DisconnectDecode(px)
	case packets.Connack:
		err = pk.ConnackDecode(px)
	case packets.Publish:
		err = pk.PublishDecode(px)
		if err == nil {
			atomic.AddInt64(&cl.ops.info.MessagesReceived, 1)
		}
	case packets.Puback:
		err = pk.PubackDecode(px)
	case packets.Pubrec:
		err = pk.PubrecDecode(px)
	case packets.Pubrel:
		err = pk.PubrelDecode(px)
	case packets.Pubcomp:
		err = pk.PubcompDecode(px)
	case packets.Subscribe:
		err = pk.SubscribeDecode(px)
	case packets.Suback:
		err = pk.SubackDecode(px)
	case packets.Unsubscribe:
		err = pk.UnsubscribeDecode(px)
	case packets.Unsuback:
		err = pk.UnsubackDecode(px)
	case packets.Pingreq:
	case packets.Pingresp:
	case packets.Auth:
		err = pk.AuthDecode(px)
	default:
		err = fmt.Errorf("invalid packet type; %v", pk.FixedHeader.Type)
	}

	if err != nil {
		return pk, err
	}

	if cl.ops.hooks.Provides(OnPacketRead) { // else no copies of the packet in and out (PATCHES.md 40)
		pk, err = cl.ops.hooks.OnPacketRead(cl, pk)
	}
	return
}

// WritePacket encodes and writes a packet to the client, at once (the
// packets queued for its writer may go before or after it).
func (cl *Client) WritePacket(pk packets.Packet) error {
	if cl.Closed() {
		return ErrConnectionClosed
	}

	if cl.Net.Conn == nil {
		return nil
	}

	buf := mempool.GetBuffer()
	defer mempool.PutBuffer(buf)
	pk, err := cl.encodePacket(pk, buf)
	if err != nil {
		return err
	}

	if err := cl.writeBytes(buf.Bytes()); err != nil {
		return err
	}

	atomic.AddInt64(&cl.ops.info.BytesSent, int64(buf.Len()))
	atomic.AddInt64(&cl.ops.info.PacketsSent, 1)
	if pk.FixedHeader.Type == packets.Publish {
		atomic.AddInt64(&cl.ops.info.MessagesSent, 1)
	}

	cl.ops.hooks.OnPacketSent(cl, pk, buf.Bytes())

	return nil
}

// encodePacket appends pk's encoding to buf, as sent to this client, and
// returns pk as encoded.
func (cl *Client) encodePacket(pk packets.Packet, buf *bytes.Buffer) (packets.Packet, error) {
	if pk.Expiry > 0 {
		expiry := pk.Expiry - time.Now().Unix()
		if expiry < 1 {
			expiry = 1
		}
		pk.Properties.MessageExpiryInterval = uint32(expiry) // [MQTT-3.3.2-6]
	}

	pk.ProtocolVersion = cl.Properties.ProtocolVersion
	props := cl.Properties.Props()
	if pk.Mods.MaxSize == 0 { // NB we use this statement to embed client packet sizes in tests
		pk.Mods.MaxSize = props.MaximumPacketSize
	}

	if props.RequestProblemInfoFlag && props.RequestProblemInfo == 0x0 {
		pk.Mods.DisallowProblemInfo = true // [MQTT-3.1.2-29] strict, no problem info on any packet if set
	}

	if pk.FixedHeader.Type != packets.Connack || props.RequestResponseInfo == 0x1 || cl.ops.options.Capabilities.Compatibilities.AlwaysReturnResponseInfo {
		pk.Mods.AllowResponseInfo = true // [MQTT-3.1.2-28] we need to know which properties we can encode
	}

	pk = cl.ops.hooks.OnPacketEncode(cl, pk)

	start := buf.Len()
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(buf)
	case packets.Connack:
		err = pk.ConnackEncode(buf)
	case packets.Publish:
		err = pk.PublishEncode(buf)
	case packets.Puback:
		err = pk.PubackEncode(buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(buf)
	case packets.Suback:
		err = pk.SubackEncode(buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(buf)
	case packets.Unsuback:
		err = pk.UnsubackEncode(buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(buf)
	case packets.Pingresp:
		err = pk.PingrespEncode(buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(buf)
	case packets.Auth:
		err = pk.AuthEncode(buf)
	default:
		err = fmt.Errorf("%w: %v", packets.ErrNoValidPacketAvailable, pk.FixedHeader.Type)
	}
	if err != nil {
		buf.Truncate(start)
		return pk, err
	}

	if pk.Mods.MaxSize > 0 && uint32(buf.Len()-start) > pk.Mods.MaxSize {
		buf.Truncate(start)
		return pk, packets.ErrPacketTooLarge // [MQTT-3.1.2-24] [MQTT-3.1.2-25]
	}

	return pk, nil
}

// writeBytes writes b to the client's connection, whole, one writer at a time.
func (cl *Client) writeBytes(b []byte) error {
	cl.Lock()
	defer cl.Unlock()
	_, err := cl.Net.Conn.Write(b)
	return err
}
