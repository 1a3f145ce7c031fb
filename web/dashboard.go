package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/httpx"
)

// The dashboard is plain HTML, CSS and ES modules in web/dashboard, embedded
// in the binary: no build step, nothing fetched from elsewhere. index.html is
// served at "/", every file at "/assets/<path>" (the scripts, the style
// sheet, the icon), and the client library, which the dashboard uses too, at
// its stable addresses /motehub.js and /motehub.d.ts (docs/client.md).
//
//go:embed dashboard
var dashboardFiles embed.FS

// assetsPrefix is where the dashboard's files are served.
const assetsPrefix = "/assets/"

// adminPath is where the admin view's page (admin.html) is served.
const adminPath = "/admin"

// The client library's stable addresses. A page of another origin imports
// it when that origin may use the hub at all (--allow-origin): originGuard
// then adds the CORS headers a module script needs.
const (
	libraryPath      = "/motehub.js"
	libraryTypesPath = "/motehub.d.ts"
)

// dashboardCSP keeps the page to its own origin: its scripts, styles,
// worker, WebSocket and API calls. No inline script or style is needed.
const dashboardCSP = "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// pageReferrerPolicy keeps the page's address from other sites, while its
// own forms (log-out) still say where they come from: under "no-referrer" a
// browser sends "Origin: null" with them, which originGuard refuses.
const pageReferrerPolicy = "same-origin"

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	etag        string // a hash of body: embedded files have no modification time
	contentType string
}

// dashboard serves the embedded files. It holds no state but its assets.
type dashboard struct {
	assets map[string]asset // by URL path
}

func newDashboard() *dashboard {
	d := &dashboard{assets: map[string]asset{}}
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the embed directive guarantees the directory
	}
	err = fs.WalkDir(sub, ".", func(name string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := fs.ReadFile(sub, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		a := asset{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, contentType: contentType(name)}
		d.assets[assetsPrefix+name] = a
		switch name {
		case "index.html":
			d.assets["/"] = a
		case "admin.html":
			d.assets[adminPath] = a
		case "motehub.js":
			d.assets[libraryPath] = a
		case "motehub.d.ts":
			d.assets[libraryTypesPath] = a
		}
		return nil
	})
	if err != nil {
		panic(err) // reading an embedded file cannot fail
	}
	return d
}

// contentType names the types the dashboard uses, with a charset for text,
// instead of relying on the system's MIME tables.
func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".ts":
		return "application/typescript; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".png":
		return "image/png"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// ServeHTTP answers GET and HEAD for "/", "/assets/..." and the library. Every response
// says no-cache: the browser keeps the file but asks each time, and the ETag
// makes the answer a 304 while the binary (and so the file) is the same.
func (d *dashboard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a, ok := d.assets[r.URL.Path]
	if !ok || strings.HasSuffix(r.URL.Path, "/index.html") || strings.HasSuffix(r.URL.Path, "/admin.html") {
		httpx.WriteError(w, http.StatusNotFound, bridge.CodeNotFound, "no dashboard file "+r.URL.Path)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if strings.HasPrefix(a.contentType, "text/html") {
		h.Set("Content-Security-Policy", dashboardCSP)
		h.Set("Referrer-Policy", pageReferrerPolicy)
	}
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}
