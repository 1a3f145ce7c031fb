package httpx

import (
	"encoding/json"
	"net"
	"net/http"
)

// WriteError answers an HTTP request with status and the JSON body
// {"error": {"code": "...", "message": "..."}}. The codes are bridge's
// (bridge.CodeBadRequest, ...).
func WriteError(w http.ResponseWriter, status int, code, message string) {
	type body struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	b, _ := json.Marshal(struct {
		Error body `json:"error"`
	}{body{Code: code, Message: message}})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Host is the host of addr ("host:port", as in http.Request.RemoteAddr or
// net.Addr.String), or addr itself when it has no port.
func Host(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}
