package web

import (
	"net/http"
	"regexp"
	"slices"
	"testing"
)

// TestClientLibraryFiles: the client library at its stable addresses,
// revalidated by ETag so that a new hub's library is
// picked up at once and an unchanged one costs a 304.
func TestClientLibraryFiles(t *testing.T) {
	srv := dashboardServer(t)
	bodies := map[string]string{}
	for _, tt := range []struct{ path, contentType string }{
		{"/motehub.js", "text/javascript; charset=utf-8"},
		{"/motehub.d.ts", "application/typescript; charset=utf-8"},
	} {
		resp, body := request(t, "GET", srv.URL+tt.path, nil)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != tt.contentType || body == "" {
			t.Fatalf("GET %s = %d %q, want 200 %q", tt.path, resp.StatusCode, h.Get("Content-Type"), tt.contentType)
		}
		bodies[tt.path] = body
		etag := h.Get("ETag")
		if h.Get("Cache-Control") != "no-cache" || !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) {
			t.Errorf("GET %s: Cache-Control %q, ETag %q, want no-cache and a hash", tt.path, h.Get("Cache-Control"), etag)
		}
		if resp, body := request(t, "GET", srv.URL+tt.path, http.Header{"If-None-Match": {etag}}); resp.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with its ETag = %d %q, want 304", tt.path, resp.StatusCode, body)
		}
		if resp, body := request(t, "HEAD", srv.URL+tt.path, nil); resp.StatusCode != 200 || body != "" || resp.Header.Get("ETag") != etag {
			t.Errorf("HEAD %s = %d, ETag %q, want 200 and %q", tt.path, resp.StatusCode, resp.Header.Get("ETag"), etag)
		}
	}
	// The dashboard's copy is the same file.
	if resp, body := request(t, "GET", srv.URL+"/assets/motehub.js", nil); resp.StatusCode != 200 || body != bodies["/motehub.js"] {
		t.Errorf("GET /assets/motehub.js = %d, differs from /motehub.js", resp.StatusCode)
	}

	// Every name the module exports is declared, and nothing else.
	exported := names(`(?m)^export (?:async )?(?:function|class|const) (\w+)`, bodies["/motehub.js"])
	declared := names(`(?m)^export declare (?:function|class|const) (\w+)`, bodies["/motehub.d.ts"])
	if len(exported) == 0 || !slices.Equal(exported, declared) {
		t.Errorf("motehub.js exports %v, motehub.d.ts declares %v", exported, declared)
	}
}

func names(pattern, text string) []string {
	var out []string
	for _, m := range regexp.MustCompile(pattern).FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}
