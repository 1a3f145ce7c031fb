// Package devicetrace reads the device traces in testdata/devices: the
// messages a convention's devices publish, one JSON object per line,
//
//	{"topic": "zigbee2mqtt/bridge/devices", "retain": true, "json": [...]}
//	{"topic": "stat/plug/POWER", "text": "ON"}
//
// where "json" is a payload of JSON text (compacted) and "text" the bytes of
// a payload that is not JSON, sent as they are. Blank lines and lines
// starting with # are comments. It is for tests and the demo: it imports the
// standard library only.
package devicetrace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Message is one line of a trace.
type Message struct {
	Topic   string
	Payload []byte
	Retain  bool
}

type line struct {
	Topic  string          `json:"topic"`
	Retain bool            `json:"retain"`
	JSON   json.RawMessage `json:"json"`
	Text   *string         `json:"text"`
}

// ReadFile reads the trace at path.
func ReadFile(path string) ([]Message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msgs, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return msgs, nil
}

// ReadDir reads every *.trace file in dir, in the order of their names,
// one after the other; it fails when there is none.
func ReadDir(dir string) ([]Message, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.trace"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no traces in %s", dir)
	}
	var all []Message
	for _, p := range paths {
		msgs, err := ReadFile(p)
		if err != nil {
			return nil, err
		}
		all = append(all, msgs...)
	}
	return all, nil
}

// Read reads a trace.
func Read(r io.Reader) ([]Message, error) {
	var out []Message
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for n := 1; sc.Scan(); n++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		var l line
		if err := json.Unmarshal(text, &l); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if l.Topic == "" {
			return nil, fmt.Errorf("line %d: no topic", n)
		}
		m := Message{Topic: l.Topic, Retain: l.Retain}
		switch {
		case l.Text != nil && l.JSON != nil:
			return nil, fmt.Errorf("line %d: a payload is json or text, not both", n)
		case l.Text != nil:
			m.Payload = []byte(*l.Text)
		case l.JSON != nil:
			var b bytes.Buffer
			if err := json.Compact(&b, l.JSON); err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			m.Payload = b.Bytes()
		}
		out = append(out, m)
	}
	return out, sc.Err()
}
