//go:build unix

package bridge_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestDeviceFramesMeetTheQueueByteBound: a browser that follows devices
// and stops reading is cut off as slow once the device frames queued for it
// pass its queue's byte bound, as with messages: device frames are not
// replies, which may pass it. Its queue holds far fewer frames than its
// message bound, so only the byte bound can stop it.
func TestDeviceFramesMeetTheQueueByteBound(t *testing.T) {
	const queueBytes = 64 << 10
	h := startRealHub(t, bridge.Config{QueueMessages: 4096, QueueBytes: queueBytes})
	d := websocket.Dialer{HandshakeTimeout: hubtest.Timeout, NetDialContext: (&net.Dialer{Control: smallReceiveBuffer}).DialContext}
	conn, _, err := d.Dial(h.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.WriteMessage(websocket.TextMessage, []byte(`["clown.talk/-/config/set", {"subscribe": [], "devices": true}]`)); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(hubtest.Timeout))
	if _, data, err := conn.ReadMessage(); err != nil || !strings.Contains(string(data), "config/ok") {
		t.Fatalf("config/set answered %q, %v", data, err)
	}
	// It reads nothing more. Each device below is a frame of about 10 KB:
	// 2,000 of them are 20 MB, past any socket buffer, and half the
	// message bound.
	var fields strings.Builder
	for i := range 64 {
		fmt.Fprintf(&fields, `,"a_rather_long_field_name_number_%03d":%d`, i, i)
	}
	const devices = 2000
	for i := range devices {
		payload := fmt.Appendf(nil, `{"n":%d%s}`, i, fields.String())
		if err := h.Broker.Publish(context.Background(), bridge.Message{Topic: fmt.Sprintf("lab/dev%04d/state", i), Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
	hubtest.Eventually(t, 2*hubtest.Timeout, func() bool { return h.Hub.Stats().Devices == devices },
		"the model has %d devices, want %d", h.Hub.Stats().Devices, devices)
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return h.Hub.Stats().SlowDisconnects == 1 },
		"a follower that reads nothing still holds %d devices' frames of 10 KB; its queue is bounded at %d bytes",
		devices, queueBytes)
}
