package bridge

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"go.uber.org/goleak"

	"github.com/motehub/motehub/topics"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPayloadToJSON(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`{"state":true}`, `{"state":true}`},
		{"{ \"state\" :\n true }", `{"state":true}`},
		{`[21.5, "°C"]`, `[21.5,"°C"]`},
		{`{"s": "a b\tc"}`, `{"s":"a b\tc"}`},
		{`21.5`, `21.5`},
		{" 42 \n", `42`},
		{`12345678901234567890123`, `12345678901234567890123`},
		{`true`, `true`},
		{`null`, `null`},
		{`"quoted"`, `"quoted"`},
		{`hello`, `"hello"`},
		{`say "hi"`, `"say \"hi\""`},
		{"a\\b", `"a\\b"`},
		{"tab\there\nnl", `"tab\there\nnl"`},
		{"\x01\x1f", `"\u0001\u001f"`},
		{"", `""`},
		{"{broken", `"{broken"`},
		{"\xff\x00", `{"$base64":"/wA="}`},
		{"caf\xc3", `{"$base64":"Y2Fmww=="}`},
	}
	for _, tt := range tests {
		if got := string(PayloadToJSON([]byte(tt.in))); got != tt.want {
			t.Errorf("PayloadToJSON(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestPayloadToJSONSharesCompactInput(t *testing.T) {
	p := []byte(`{"state":true}`)
	allocs := testing.AllocsPerRun(100, func() { PayloadToJSON(p) })
	if allocs != 0 {
		t.Fatalf("a payload that is already compact JSON costs %v allocations", allocs)
	}
}

func TestPayloadFromJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		err      bool
	}{
		{`{"state": false}`, `{"state":false}`, false},
		{`"text"`, `"text"`, false},
		{`[1, 2]`, `[1,2]`, false},
		{`{"$base64": "/wAQ"}`, "\xff\x00\x10", false},
		{`{"$base64": "/wAQ", "other": 1}`, `{"$base64":"/wAQ","other":1}`, false},
		{`{"$base64": 5}`, "", true},
		{`{"$base64": "!!"}`, "", true},
	}
	for _, tt := range tests {
		got, err := PayloadFromJSON(json.RawMessage(tt.in))
		if (err != nil) != tt.err || (!tt.err && string(got) != tt.want) {
			t.Errorf("PayloadFromJSON(%s) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && AsError(err).Code != CodeBadJSON {
			t.Errorf("PayloadFromJSON(%s): error %v is not bad-json", tt.in, err)
		}
	}
}

func TestParseLine(t *testing.T) {
	t.Parallel()
	in, err := ParseMessage([]byte(`["relay/i2c0-3b/set", {"state": false}]`))
	if err != nil || in.Topic != "relay/i2c0-3b/set" || string(in.Payload) != `{"state": false}` || in.ID != "" {
		t.Fatalf("ParseMessage = %+v, %v", in, err)
	}
	if in, err := ParseMessage([]byte(`["r/set", true, {"id": "c7", "other": 1}]`)); err != nil || in.ID != "c7" {
		t.Fatalf("a command with an id: %+v, %v", in, err)
	}
	for _, bad := range []string{`x`, `[]`, `["a"]`, `["a",1,2]`, `["a",1,[]]`, `["a",1,{},4]`, `["a",1,{"id":5}]`, `[1,2]`, `{"a":1}`, "[\"\xff\", 1]", `["a", 1`} {
		if _, err := ParseMessage([]byte(bad)); err == nil || AsError(err).Code != CodeBadJSON {
			t.Errorf("ParseMessage(%q) = %v, want a bad-json error", bad, err)
		}
	}
}

func TestSplitLines(t *testing.T) {
	var got []string
	splitLines([]byte("a\n\n  b  \r\nc"), func(l []byte) { got = append(got, string(l)) })
	if strings.Join(got, "|") != "a|b|c" {
		t.Fatalf("splitLines = %q", got)
	}
}

// FuzzPayloadToJSON: whatever a device publishes becomes one line of valid
// JSON, binary survives the round trip exactly, JSON is kept (compacted), and
// text becomes the JSON string of the same text.
func FuzzPayloadToJSON(f *testing.F) {
	for _, s := range []string{`{"a": 1}`, `[21.5, "°C"]`, "text", "\xff\x00", "", `"s"`, " 1 ", "a\nb", `{"$base64":"AA=="}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		out := PayloadToJSON(p)
		if !json.Valid(out) || bytes.ContainsAny(out, "\n\r") || !utf8.Valid(out) {
			t.Fatalf("PayloadToJSON(%q) = %q: not one line of valid UTF-8 JSON", p, out)
		}
		line := appendFrame(nil, "t", out, "")
		if _, err := ParseMessage(bytes.TrimSuffix(line, []byte("\n"))); err != nil {
			t.Fatalf("frame %q does not parse back: %v", line, err)
		}
		switch {
		case !utf8.Valid(p):
			back, err := PayloadFromJSON(out)
			if err != nil || !bytes.Equal(back, p) {
				t.Fatalf("binary %q came back as %q, %v", p, back, err)
			}
		case json.Valid(p):
			var compact bytes.Buffer
			_ = json.Compact(&compact, p)
			if !bytes.Equal(out, compact.Bytes()) {
				t.Fatalf("JSON %q became %q, want %q", p, out, compact.Bytes())
			}
		default:
			var s string
			if err := json.Unmarshal(out, &s); err != nil || s != string(p) {
				t.Fatalf("text %q became %q (%q, %v)", p, out, s, err)
			}
		}
	})
}

// FuzzParseLine: no line a client sends makes the parser panic, and what it
// accepts is a string topic and a valid JSON payload.
func FuzzParseLine(f *testing.F) {
	for _, s := range []string{`["a", 1]`, `["a/b", {"x": [1, 2]}]`, `[`, `["a"]`, "[\"\xff\", 1]", `[[[[[[]]]]]]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		in, err := ParseMessage(line)
		if err != nil {
			if AsError(err).Code != CodeBadJSON {
				t.Fatalf("ParseMessage(%q): error %v is not bad-json", line, err)
			}
			return
		}
		if !utf8.ValidString(in.Topic) || !json.Valid(in.Payload) || !utf8.ValidString(in.ID) {
			t.Fatalf("ParseMessage(%q) accepted %+v", line, in)
		}
		if _, err := PayloadFromJSON(in.Payload); err != nil && AsError(err).Code != CodeBadJSON {
			t.Fatalf("PayloadFromJSON(%q): %v", in.Payload, err)
		}
	})
}

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"plain", `q"b\`, "\x00\x1f\x7f", "čidlo/°C", "\u2028"} {
		var decoded string
		if err := json.Unmarshal(appendString(nil, s), &decoded); err != nil || decoded != s {
			t.Errorf("appendString(%q) = %s decodes to %q, %v", s, appendString(nil, s), decoded, err)
		}
	}
}

// TestOriginAllowed: a page's origin is the hub's own when scheme, host and
// port all match (the scheme from TLS, or from a trusted proxy's word), or
// when it is listed exactly.
func TestOriginAllowed(t *testing.T) {
	tests := []struct {
		origin, hub string // hub: the URL the request reached (https: over TLS)
		forwarded   string // the scheme a trusted proxy reported, if any
		allowed     []string
		want        bool
	}{
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080", "", nil, true},
		{"https://hub.example", "https://HUB.example", "", nil, true},
		{"http://127.0.0.1:8081", "http://127.0.0.1:8080", "", nil, false},
		{"https://evil.example", "http://hub.example", "", nil, false},
		{"null", "http://hub.example", "", nil, false},
		{"https://dash.example", "http://hub.example", "", []string{"https://dash.example/"}, true},
		{"https://evil.example", "http://hub.example", "", []string{"https://dash.example"}, false},
		{"https://any.example", "http://hub.example", "", []string{"*"}, true},
		// The scheme is part of the origin.
		{"https://127.0.0.1:8080", "http://127.0.0.1:8080", "", nil, false},
		{"http://127.0.0.1:8080", "https://127.0.0.1:8080", "", nil, false},
		{"http://dash.example", "http://hub.example", "", []string{"https://dash.example"}, false},
		// Behind a TLS-terminating proxy the hub is reached over https.
		{"https://hub.example", "http://hub.example", "https", nil, true},
		{"http://hub.example", "http://hub.example", "https", nil, false},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodGet, tt.hub+"/ws", nil)
		if tt.forwarded != "" {
			r = r.WithContext(WithForwardedScheme(r.Context(), tt.forwarded))
		}
		if got := OriginAllowed(tt.origin, r, tt.allowed); got != tt.want {
			t.Errorf("OriginAllowed(%q) at %s (forwarded %q), allowed %q = %v, want %v", tt.origin, tt.hub, tt.forwarded, tt.allowed, got, tt.want)
		}
	}
}

// FuzzParseStreamQuery: no query string or Last-Event-ID makes the SSE and
// long-poll parser panic, and what it accepts is valid.
func FuzzParseStreamQuery(f *testing.F) {
	f.Add("filter=a/%23&filter=b", "")
	f.Add("filter=&lastEventId=x", "abc-1")
	f.Add("since=abc-12&filter=%2B/%2B", "")
	f.Add("filter=%23/a", "")
	f.Fuzz(func(t *testing.T, rawQuery, lastEventID string) {
		q, _ := url.ParseQuery(rawQuery)
		h := http.Header{}
		if lastEventID != "" {
			h.Set("Last-Event-ID", lastEventID)
		}
		sq, err := ParseStreamQuery(q, h)
		if err != nil {
			if code := AsError(err).Code; code != CodeBadTopic && code != CodeBadRequest && code != CodeLimit {
				t.Fatalf("error %v has code %q", err, code)
			}
			return
		}
		if len(sq.Filters) == 0 || len(sq.Since) > 128 {
			t.Fatalf("accepted %+v", sq)
		}
		for _, f := range sq.Filters {
			if err := topics.ValidateFilter(f); err != nil {
				t.Fatalf("accepted invalid filter %q", f)
			}
		}
	})
}

// TestEncodeEventOneAllocation: a message's line in each format is what
// the wire format says, and fits in the eventSize the fan-out allocates
// for it, so that it costs one allocation of the size it needs.
func TestEncodeEventOneAllocation(t *testing.T) {
	const epoch, seq = "4f3a9c1e", uint64(18446744073709551615)
	tests := []struct {
		f       format
		payload string
		text    bool
		want    string
	}{
		{formatLines, `{"v":1}`, false, `["a/b",{"v":1}]` + "\n"},
		{formatLinesIDs, `{"v":1}`, false, `["a/b",{"v":1},{"id":"4f3a9c1e-18446744073709551615"}]` + "\n"},
		{formatSSE, `{"v":1}`, false, "id: 4f3a9c1e-18446744073709551615\ndata: [\"a/b\",{\"v\":1}]\n\n"},
		{formatLines | formatText, `"ON"`, true, `["a/b",{"$text":"ON"}]` + "\n"},
		{formatLinesIDs | formatText, `"ON"`, true, `["a/b",{"$text":"ON"},{"id":"4f3a9c1e-18446744073709551615"}]` + "\n"},
		{formatSSE | formatText, `"ON"`, true, "id: 4f3a9c1e-18446744073709551615\ndata: [\"a/b\",{\"$text\":\"ON\"}]\n\n"},
		{formatSSE | formatText, `{"v":1}`, false, "id: 4f3a9c1e-18446744073709551615\ndata: [\"a/b\",{\"v\":1}]\n\n"},
	}
	// A restored epoch is not checked: an id escaped as appendFrame does.
	odd := `a"b\c`
	if got, want := encodeEvent(nil, formatLinesIDs, "t", []byte("1"), false, odd, 7), appendFrame(nil, "t", []byte("1"), eventID(odd, 7)); !bytes.Equal(got, want) {
		t.Errorf("epoch %q: %q, want %q", odd, got, want)
	}
	for _, tt := range tests {
		size := eventSize(tt.f, "a/b", []byte(tt.payload), tt.text, epoch)
		got := encodeEvent(make([]byte, 0, size), tt.f, "a/b", []byte(tt.payload), tt.text, epoch, seq)
		if string(got) != tt.want {
			t.Errorf("format %#x: %q, want %q", tt.f, got, tt.want)
		}
		if len(got) > size {
			t.Errorf("format %#x: %d bytes, eventSize %d", tt.f, len(got), size)
		}
		if tt.text {
			continue // the {"$text": ...} wrapper is made apart
		}
		buf := make([]byte, 0, size)
		if allocs := testing.AllocsPerRun(10, func() { encodeEvent(buf, tt.f, "a/b", []byte(tt.payload), tt.text, epoch, seq) }); allocs != 0 {
			t.Errorf("format %#x: %v allocations into a buffer of eventSize", tt.f, allocs)
		}
	}
}
