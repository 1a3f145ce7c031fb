package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/broker"
)

func dashboardServer(t *testing.T) *httptest.Server {
	t.Helper()
	b, err := broker.Start(broker.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	hub, err := bridge.New(b, bridge.Config{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close(context.Background()) })
	srv := httptest.NewServer(New(hub, Config{Logger: quiet}))
	t.Cleanup(srv.Close)
	return srv
}

func request(t *testing.T, method, url string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	client := &http.Client{}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// TestDashboardFiles: the page and its files with their types, revalidated
// by ETag (embedded files have no modification time), and JSON errors for
// what is not there.
func TestDashboardFiles(t *testing.T) {
	srv := dashboardServer(t)
	tests := []struct {
		path, contentType, contains string
	}{
		{"/", "text/html; charset=utf-8", "<title>motehub</title>"},
		{"/assets/style.css", "text/css; charset=utf-8", ".device"},
		{"/assets/js/app.js", "text/javascript; charset=utf-8", "import"},
		{"/assets/js/worker.js", "text/javascript; charset=utf-8", "onconnect"},
		{"/assets/icon.svg", "image/svg+xml", "<svg"},
	}
	for _, tt := range tests {
		resp, body := request(t, "GET", srv.URL+tt.path, nil)
		h := resp.Header
		if resp.StatusCode != 200 || h.Get("Content-Type") != tt.contentType || !strings.Contains(body, tt.contains) {
			t.Errorf("GET %s = %d %q, want 200 %q containing %q", tt.path, resp.StatusCode, h.Get("Content-Type"), tt.contentType, tt.contains)
		}
		etag := h.Get("ETag")
		if h.Get("Cache-Control") != "no-cache" || !regexp.MustCompile(`^"[0-9a-f]{24}"$`).MatchString(etag) || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: Cache-Control %q, ETag %q, nosniff %q", tt.path, h.Get("Cache-Control"), etag, h.Get("X-Content-Type-Options"))
		}
		if resp, body := request(t, "GET", srv.URL+tt.path, http.Header{"If-None-Match": {etag}}); resp.StatusCode != http.StatusNotModified || body != "" {
			t.Errorf("GET %s with its ETag = %d %q, want 304", tt.path, resp.StatusCode, body)
		}
		if resp, body := request(t, "HEAD", srv.URL+tt.path, nil); resp.StatusCode != 200 || body != "" || resp.Header.Get("ETag") != etag {
			t.Errorf("HEAD %s = %d, ETag %q", tt.path, resp.StatusCode, resp.Header.Get("ETag"))
		}
	}

	resp, _ := request(t, "GET", srv.URL+"/", nil)
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("the page's Content-Security-Policy is %q", csp)
	}

	for _, path := range []string{"/assets/nope.js", "/assets/", "/assets/index.html", "/index.html", "/assets/../web.go"} {
		resp, body := request(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/json" || !strings.Contains(body, `"code":"not-found"`) {
			t.Errorf("GET %s = %d %q %s, want a JSON 404", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
		}
	}
	if resp, body := request(t, "POST", srv.URL+"/", nil); resp.StatusCode != 405 || !strings.Contains(body, `"code":"bad-method"`) {
		t.Errorf("POST / = %d %s, want a JSON 405", resp.StatusCode, body)
	}
}

// TestDashboardReferencesResolve: every file the page or a module refers to
// is served, so the dashboard works offline from the binary alone.
func TestDashboardReferencesResolve(t *testing.T) {
	srv := dashboardServer(t)
	refs := regexp.MustCompile(`(?:href|src)="(/[^"]*)"|from "(\./[^"]+)"|import\("(/[^"]+)"\)|new URL\("(\./[^"]+)", import\.meta\.url\)`)
	seen := map[string]bool{}
	queue := []string{"/", adminPath} // the pages: the dashboard and the admin view
	for len(queue) > 0 {
		path := queue[0]
		queue = queue[1:]
		if seen[path] {
			continue
		}
		seen[path] = true
		resp, body := request(t, "GET", srv.URL+path, nil)
		if resp.StatusCode != 200 {
			t.Errorf("GET %s = %d", path, resp.StatusCode)
			continue
		}
		dir := path[:strings.LastIndex(path, "/")+1]
		for _, m := range refs.FindAllStringSubmatch(body, -1) {
			for _, ref := range m[1:] {
				switch {
				case ref == "":
				case strings.HasPrefix(ref, "./"):
					queue = append(queue, dir+strings.TrimPrefix(ref, "./"))
				case strings.HasPrefix(ref, "/assets/"):
					queue = append(queue, ref)
				}
			}
		}
	}
	for _, want := range []string{"/assets/js/app.js", "/assets/js/worker.js", "/assets/js/client.js", "/assets/style.css"} {
		if !seen[want] {
			t.Errorf("%s was never referred to (refs followed: %v)", want, seen)
		}
	}
	for path := range dashboardServerFiles() {
		// The client library is for other pages (TestClientLibraryFiles).
		if !seen[path] && !isLibrary(path) {
			t.Errorf("%s is embedded but nothing refers to it", path)
		}
	}
}

// isLibrary reports whether path is one of the client library's files.
func isLibrary(path string) bool {
	switch path {
	case libraryPath, libraryTypesPath, assetsPrefix + "motehub.js", assetsPrefix + "motehub.d.ts":
		return true
	}
	return false
}

// dashboardServerFiles lists the URL paths of every embedded file.
func dashboardServerFiles() map[string]bool {
	out := map[string]bool{}
	for path := range newDashboard().assets {
		if path != "/assets/index.html" && path != "/assets/admin.html" { // served as / and /admin only
			out[path] = true
		}
	}
	return out
}
