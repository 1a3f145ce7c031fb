package bridge

import (
	"errors"
	"fmt"
	"net/http"
)

// Error codes carried by Clown.Talk error frames and by HTTP error bodies.
const (
	CodeBadJSON      = "bad-json"     // not a JSON array [topic, payload], or not valid UTF-8
	CodeBadTopic     = "bad-topic"    // an invalid topic, filter or base, or an unknown control topic
	CodeTooLarge     = "too-large"    // a message over the size limit
	CodeForbidden    = "forbidden"    // the origin or the user may not do this
	CodeUnavailable  = "unavailable"  // the hub or the broker cannot take it now
	CodeUnsupported  = "unsupported"  // a request this hub does not implement
	CodeLimit        = "limit"        // a per-client limit (subscriptions) would be exceeded
	CodeBadRequest   = "bad-request"  // an HTTP request that is wrong in another way
	CodeNotFound     = "not-found"    // an HTTP route that does not exist
	CodeMethod       = "bad-method"   // an HTTP method the route does not take
	CodeInternal     = "internal"     // a fault of the hub, logged
	CodeRateLimited  = "rate-limited" // past a rate limit
	CodeUnauthorized = "unauthorized" // no valid credentials

	// How a command fails (its ack's "code"; docs/devices.md).
	CodeTimeout       = "timeout"        // the device said nothing within Config.AckTimeout
	CodeStateDiffers  = "state-differs"  // the device reported another state until then
	CodeOffline       = "offline"        // the device is known to be offline: not sent
	CodeBadValue      = "bad-value"      // the value does not suit the entity
	CodeUnknownDevice = "unknown-device" // the model has no such device (or the reader may not see it)
	CodeUnknownEntity = "unknown-entity" // the device has no such entity
	CodeNotControl    = "not-control"    // the entity cannot be commanded
)

// Error is a problem with what a client sent. A WebSocket session answers it
// with a ["clown.talk/-/error", {...}] frame and goes on; HTTP answers it with
// a JSON body (see httpx.WriteError).
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Topic   string `json:"topic,omitempty"`
}

func (e *Error) Error() string {
	if e.Topic != "" {
		return fmt.Sprintf("%s: %s (topic %q)", e.Code, e.Message, e.Topic)
	}
	return e.Code + ": " + e.Message
}

func errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// AsError returns err as an *Error, or an internal error when it is not one.
func AsError(err error) *Error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// HTTPStatus is the HTTP status that goes with an error code.
func HTTPStatus(code string) int {
	switch code {
	case CodeBadJSON, CodeBadTopic, CodeBadRequest, CodeBadValue, CodeNotControl:
		return http.StatusBadRequest
	case CodeOffline, CodeStateDiffers:
		return http.StatusConflict
	case CodeTimeout:
		return http.StatusGatewayTimeout
	case CodeUnknownDevice, CodeUnknownEntity:
		return http.StatusNotFound
	case CodeTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeForbidden:
		return http.StatusForbidden
	case CodeUnauthorized:
		return http.StatusUnauthorized
	case CodeNotFound:
		return http.StatusNotFound
	case CodeMethod:
		return http.StatusMethodNotAllowed
	case CodeRateLimited, CodeLimit:
		return http.StatusTooManyRequests
	case CodeUnavailable:
		return http.StatusServiceUnavailable
	case CodeUnsupported:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}
