package bridge

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/devices"
	"github.com/motehub/motehub/topics"
)

// Device topics of Clown.Talk (docs/devices.md).
const (
	topicDevicesGet = controlPrefix + "devices/get"
	topicDevicesOK  = controlPrefix + "devices/ok"
	topicDevice     = controlPrefix + "device"
	topicCommand    = controlPrefix + "command"
)

// deviceViews decides what each reader sees of a device, and sends the
// model worker's changes to the sessions that follow devices (config/set
// "devices": true over a WebSocket, ?devices=1 on an event stream). Its lock is a leaf, held to add, remove or list the
// followers; frames go through each client's queue (send), like every
// frame, outside it.
type deviceViews struct {
	authz *auth.Authorizer
	send  func(c *client, frame []byte) // queues within the queue's bounds; drops a slow client

	mu        sync.Mutex
	followers map[*client]struct{} // at most one per session (Config.MaxSessions)
}

func newDeviceViews(authz *auth.Authorizer, send func(*client, []byte)) *deviceViews {
	return &deviceViews{authz: authz, send: send, followers: make(map[*client]struct{})}
}

// follow makes c get device frames from now on, or (on false) no more.
func (v *deviceViews) follow(c *client, on bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if on {
		v.followers[c] = struct{}{}
	} else {
		delete(v.followers, c)
	}
}

func (v *deviceViews) list() []*client {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := make([]*client, 0, len(v.followers))
	for c := range v.followers {
		out = append(out, c)
	}
	return out
}

// viewKey is one way of seeing devices: a reader and a base (the reader
// does not matter when nothing is checked), and the transport's framing.
type viewKey struct {
	base string
	who  auth.Identity
	sse  bool
}

// sendDevice sends d as each follower sees it, to those who see some of it.
// It keeps nothing of d once it returns (the model worker reuses d's
// storage), nor does sendRemoved of old.
func (v *deviceViews) sendDevice(d devices.Device) {
	v.sendEach(func(who auth.Identity, base string) any {
		if vd, ok := viewOf(v.authz, who, base, d); ok {
			return vd
		}
		return nil
	})
}

// sendRemoved tells the followers who saw old (as it was last sent) that
// it is gone.
func (v *deviceViews) sendRemoved(old devices.Device) {
	v.sendEach(func(who auth.Identity, base string) any {
		if _, ok := viewOf(v.authz, who, base, old); ok {
			return removedDevice{ID: old.ID, Removed: true}
		}
		return nil
	})
}

// sendEach queues for each follower the device frame of what viewFor
// gives for its view (nil: nothing), made once per view: on a WebSocket
// ["clown.talk/-/device", view], on an event stream "event: device" with
// the view as its data and no id (a device change is no event of the
// stream's: it moves no resume position).
func (v *deviceViews) sendEach(viewFor func(who auth.Identity, base string) any) {
	followers := v.list()
	if len(followers) == 0 {
		return
	}
	checked := v.authz.Enabled()
	frames := make(map[viewKey][]byte, 1)
	for _, c := range followers {
		key := viewKey{base: c.base, sse: c.kind == transportSSE}
		if checked {
			key.who = c.who
		}
		frame, ok := frames[key]
		if !ok {
			if view := viewFor(c.who, c.base); view != nil {
				frame = deviceFrame(view, key.sse)
			}
			frames[key] = frame
		}
		if frame != nil {
			v.send(c, frame)
		}
	}
}

// deviceFrame is a device frame of view for a WebSocket, or for an event
// stream when sse is set.
func deviceFrame(view any, sse bool) []byte {
	if !sse {
		return controlFrame(topicDevice, view)
	}
	data, err := json.Marshal(view)
	if err != nil {
		// Only the hub's own types are marshalled here; this is a programming error.
		panic("bridge: cannot encode a device: " + err.Error())
	}
	return fmt.Appendf(nil, "event: device\ndata: %s\n\n", data)
}

// removedDevice is the payload of a device frame for a device that is gone.
type removedDevice struct {
	ID      string `json:"id"`
	Removed bool   `json:"removed"`
}

// viewOf is what who, reading below base, sees of d (docs/devices.md, "Who
// sees what"): the entities whose state topic it may read, and those with
// no state topic (buttons) whose command topic it may write, all below
// base, with their topics relative to base; false when that is none.
func viewOf(authz *auth.Authorizer, who auth.Identity, base string, d devices.Device) (devices.Device, bool) {
	if base == "" && !authz.Enabled() {
		return d, true
	}
	kept := make([]devices.Entity, 0, len(d.Entities))
	for _, e := range d.Entities {
		if e.Topic != "" {
			rel, ok := topics.Unmount(base, e.Topic)
			if !ok || !authz.Allowed(who, auth.Read, e.Topic) {
				continue
			}
			e.Topic = rel
		} else if e.Control == nil || !authz.Allowed(who, auth.Write, e.Control.Topic) {
			continue
		}
		if e.Control != nil {
			rel, ok := topics.Unmount(base, e.Control.Topic)
			if ok {
				ctl := *e.Control
				ctl.Topic = rel
				e.Control = &ctl
			} else if e.Topic == "" {
				continue // a button this session cannot reach
			} else {
				e.Control = nil // commanded outside the session's base: read only here
			}
		}
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		return devices.Device{}, false
	}
	d.Entities = kept
	return d, true
}

// devicesFor returns the devices who, reading below base, sees (viewOf),
// sorted by id.
func (h *Hub) devicesFor(who auth.Identity, base string) []devices.Device {
	all := h.devices.devices()
	out := all[:0]
	for _, d := range all {
		if vd, ok := viewOf(h.authz, who, base, d); ok {
			out = append(out, vd)
		}
	}
	return out
}

// Devices returns the devices who may read (see docs/devices.md), sorted
// by id, with topics as they are (the root base).
func (h *Hub) Devices(who auth.Identity) []devices.Device {
	return h.devicesFor(who, "")
}

// Device returns one device as who sees it; false when there is none or
// who may read none of it.
func (h *Hub) Device(who auth.Identity, id string) (devices.Device, bool) {
	return h.deviceFor(who, "", id)
}

// devicesGet answers ["clown.talk/-/devices/get", {}] with the devices the
// session sees.
func (h *Hub) devicesGet(c *client) {
	list := h.devicesFor(c.who, c.base)
	if list == nil {
		list = []devices.Device{}
	}
	h.fan.send(c, controlFrame(topicDevicesOK, struct {
		Devices []devices.Device `json:"devices"`
	}{list}))
}
