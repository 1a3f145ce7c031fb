package main

import "bytes"

// Clown.Talk frames hold one or more lines, each ["topic",payload] (maybe
// with a third element) and a newline. The scanner finds the topic and, in a
// bench payload, "s" and "t", without a JSON decoder.

// forEachLine calls fn for each non-empty line of a frame.
func forEachLine(frame []byte, fn func(line []byte)) {
	for len(frame) > 0 {
		i := bytes.IndexByte(frame, '\n')
		var line []byte
		if i < 0 {
			line, frame = frame, nil
		} else {
			line, frame = frame[:i], frame[i+1:]
		}
		if len(line) > 0 && line[len(line)-1] == '\r' {
			line = line[:len(line)-1]
		}
		if len(line) > 0 {
			fn(line)
		}
	}
}

// scanClownLine splits a line ["topic",rest...] into the topic as it is
// written (escapes left as they are) and what follows the comma.
func scanClownLine(line []byte) (topic, rest []byte, ok bool) {
	if len(line) < 4 || line[0] != '[' || line[1] != '"' {
		return nil, nil, false
	}
	for i := 2; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++ // skip the escaped byte
		case '"':
			if i+1 >= len(line) || line[i+1] != ',' {
				return nil, nil, false
			}
			return line[2:i], line[i+2:], true
		}
	}
	return nil, nil, false
}
