package broker

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/websocket"

	"github.com/motehub/motehub/bridge"
	"github.com/motehub/motehub/internal/hubtest"
)

// TestRemoteSubscribeCancelRace: goroutines subscribe and cancel over and
// over while messages flow. A subscription that stays meanwhile misses
// nothing (subscribing again to its filter does not interrupt it), and
// after the churn the upstream holds exactly the subscriptions that are
// left: a filter whose last subscription went and came back works.
func TestRemoteSubscribeCancelRace(t *testing.T) {
	m := hubtest.StartMosquitto(t)
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{m.URL()}}, true)
	steady, _ := busSubscribe(t, r, "z/#")
	device := hubtest.ConnectMQTT(t, m.Addr(), "device-churn")

	const (
		workers = 8
		rounds  = 40
		flood   = 300
	)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				filter := []string{"z/#", "z/+", "w/#", fmt.Sprintf("w/%d", w)}[i%4]
				cancel, err := r.Subscribe(filter, func(bridge.Message) {})
				if err != nil {
					errs <- fmt.Errorf("Subscribe(%q): %w", filter, err)
					return
				}
				cancel()
			}
		})
	}
	for i := range flood {
		hubtest.PublishMQTT(t, device, fmt.Sprintf("z/%d", i), 1, false, nil)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	hubtest.Eventually(t, hubtest.Timeout, func() bool { return steady.count() >= flood }, "the steady subscription got %d of %d", steady.count(), flood)
	for i, topic := range steady.topics("") {
		if want := fmt.Sprintf("z/%d", i); topic != want {
			t.Fatalf("message %d: %s, want %s (lost, repeated or out of order)", i, topic, want)
		}
	}

	again, _ := busSubscribe(t, r, "w/#")
	hubtest.PublishMQTT(t, device, "w/after", 1, false, nil)
	eventuallyTopics(t, again, "", "w/after")
	r.mu.RLock()
	refs := fmt.Sprint(r.refs)
	r.mu.RUnlock()
	if refs != "map[w/#:1 z/#:1]" {
		t.Errorf("subscriptions left: %s", refs)
	}
}

// wsProxy is MQTT over WebSocket on /mqtt in front of the TCP broker at
// addr, as a broker's WebSocket listener would be (this Mosquitto has none).
func wsProxy(t *testing.T, addr string) string {
	up := websocket.Upgrader{Subprotocols: []string{"mqtt"}}
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path != "/mqtt" {
			http.NotFound(w, req)
			return
		}
		ws, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		defer ws.Close()
		tcp, err := net.Dial("tcp", addr)
		if err != nil {
			return
		}
		defer tcp.Close()
		wg.Go(func() { // broker to client; ends when either side closes
			defer ws.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := tcp.Read(buf)
				if err != nil || ws.WriteMessage(websocket.BinaryMessage, buf[:n]) != nil {
					return
				}
			}
		})
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if _, err := tcp.Write(data); err != nil {
				return
			}
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	return "ws://" + strings.TrimPrefix(srv.URL, "http://") + "/mqtt"
}

// TestRemoteOverWebSocket: ws:// URLs, path included, carry the same Bus.
func TestRemoteOverWebSocket(t *testing.T) {
	e := startTest(t, Config{})
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{wsProxy(t, e.Addr().String())}}, true)
	sub, _ := busSubscribe(t, r, "ws/#")
	device := hubtest.ConnectMQTT(t, e.Addr().String(), "device-ws")
	commands := deviceSubscribe(t, device, "cmd/#")
	hubtest.PublishMQTT(t, device, "ws/in", 1, false, []byte("1"))
	eventuallyTopics(t, sub, "", "ws/in")
	mustPublish(t, r, "cmd/out", 1)
	if d := hubtest.Receive(t, commands, hubtest.Timeout, "command over WebSocket"); d.Topic != "cmd/out" || d.QoS != 1 {
		t.Fatalf("device got %v", d)
	}
}

// TestRemoteRefusesSharedSubscriptions: every replica needs every message
// its clients want, so a shared subscription, which splits them among
// replicas, is a mistake.
func TestRemoteRefusesSharedSubscriptions(t *testing.T) {
	f := startFakeBroker(t, nil)
	r := connectRemoteTest(t, RemoteConfig{URLs: []string{f.URL()}}, false)
	for _, filter := range []string{"$share/hubs/#", "$queue/a", "a/#/b", ""} {
		if _, err := r.Subscribe(filter, func(bridge.Message) {}); err == nil {
			t.Errorf("Subscribe(%q) succeeded", filter)
		}
	}
}
