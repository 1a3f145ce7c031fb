package main

import (
	"bytes"
	"strconv"
)

// The bench payload is valid JSON of a fixed size carrying a sequence number
// and the send time in nanoseconds:
//
//	{"s":123,"t":1732000000000000000,"p":"xxxx...x"}
//
// padded with 'x' to exactly the size asked for.

// appendBenchPayload appends the payload of message seq sent at sentNs, padded
// to size bytes (or longer, if size cannot hold the fields).
func appendBenchPayload(dst []byte, seq uint64, sentNs int64, size int) []byte {
	start := len(dst)
	dst = append(dst, `{"s":`...)
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, `,"t":`...)
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, `,"p":"`...)
	for pad := size - (len(dst) - start) - 2; pad > 0; pad-- {
		dst = append(dst, 'x')
	}
	return append(dst, `"}`...)
}

var (
	keySeq  = []byte(`"s":`)
	keyTime = []byte(`"t":`)
)

// scanSeqTime finds "s" and "t" in a bench payload, or in any text that
// holds one (a Clown.Talk line, an SSE data line), without decoding JSON.
func scanSeqTime(b []byte) (seq uint64, sentNs int64, ok bool) {
	i := bytes.Index(b, keySeq)
	if i < 0 {
		return 0, 0, false
	}
	b = b[i+len(keySeq):]
	s, n := leadingUint(b)
	if n == 0 {
		return 0, 0, false
	}
	b = b[n:]
	i = bytes.Index(b, keyTime)
	if i < 0 {
		return 0, 0, false
	}
	t, n := leadingUint(b[i+len(keyTime):])
	if n == 0 || t > 1<<63-1 {
		return 0, 0, false
	}
	return s, int64(t), true
}

// leadingUint parses the decimal digits at the start of b; n is how many,
// 0 when there are none or the number overflows a uint64.
func leadingUint(b []byte) (v uint64, n int) {
	const maxU = ^uint64(0)
	for n < len(b) && b[n] >= '0' && b[n] <= '9' {
		d := uint64(b[n] - '0')
		if v > (maxU-d)/10 {
			return 0, 0
		}
		v = v*10 + d
		n++
	}
	return v, n
}
