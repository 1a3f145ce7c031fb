// Package mqtt5test is a small MQTT 5.0 client written by hand, for tests
// only: it exists to check brokers (the embedded one against Mosquitto) with
// a codec that shares nothing with theirs. It is not a client for
// production: no reconnect, no persistence, no flow control of its own.
//
// What it covers of the MQTT 5.0 specification (OASIS Standard, 7 March 2019):
//
//   - Encoding of every packet a client sends (section 3): CONNECT with all
//     its properties, the Will and its properties, and credentials; PUBLISH
//     with every property; PUBACK, PUBREC, PUBREL and PUBCOMP with reason
//     codes and properties; SUBSCRIBE with all subscription options and a
//     subscription identifier; UNSUBSCRIBE; PINGREQ; DISCONNECT; AUTH. It
//     also encodes the packets a server sends, so that its own tests can play
//     the server.
//   - Strict decoding of every packet a server sends: CONNACK, PUBLISH,
//     PUBACK, PUBREC, PUBREL, PUBCOMP, SUBACK, UNSUBACK, PINGRESP, DISCONNECT
//     and AUTH. A packet that breaks the rules of section 2 or 3 (reserved
//     flags, a non-minimal variable byte integer, bad UTF-8 or U+0000, a
//     property not allowed in that packet or given twice, a value out of
//     range, a reason code not allowed for that packet, bytes left over or
//     missing) is an error, as is a packet type a server never sends.
//   - The rules that need the session's state (section 4): the first packet
//     is a CONNACK, and only one; no packet larger than the Maximum Packet
//     Size the client asked for; topic aliases within the client's Topic
//     Alias Maximum, resolved, and never used before they are set; no more
//     unacknowledged QoS 1 and 2 PUBLISHes than the client's Receive Maximum,
//     and no PUBLISH sent again on the same connection while its packet
//     identifier is in use; a SUBACK or UNSUBACK answering a request that was
//     sent, with one reason code per filter. Such a breach ends the client's
//     stream with a [*Violation], which fails the test that reads it.
//
// A [Client] lets a test read packets one by one as they arrive (Next,
// Expect, Await), send any packet or raw bytes, acknowledge messages itself
// (Options.ManualAcks) to test flow control and redelivery, stop reading
// for a while (PauseReading: a slow client), and check that nothing more
// came (Sync: a marker through the broker, not a wait). It does
// not cover enhanced authentication beyond encoding and decoding AUTH, nor
// MQTT 3.1.1 (a test that needs a 3.1.1 exchange writes and reads the bytes).
//
// Concurrency: a Client belongs to one test. Its reader goroutine ends before
// Close returns, and Close is registered with the test's cleanup. Next,
// Inflight and Close may be called from any goroutine; the other methods
// fail the test on error and so belong to the test's goroutine; one
// goroutine should consume the packets.
package mqtt5test
