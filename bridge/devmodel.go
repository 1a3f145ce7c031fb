package bridge

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/motehub/motehub/devices"
)

// The device model in the hub (see package devices): deviceModel is an
// Observer whose Observe appends the record to a bounded queue, O(1) under
// the fan-out lock; one goroutine of the hub's, the model worker, takes the
// queue a batch at a time, applies it to the model under the model's own
// lock, and sends each device the batch changed, once, to the sessions
// that follow devices (devices.go).
//
// When the queue overflows, it is emptied and the worker rebuilds the model
// from the state store's last values (a snapshot, current at event S),
// then applies only the queued records after S: nothing is lost (but what
// the state store no longer keeps) and the fan-out never waits.

// The defaults of Config.DeviceQueue and DeviceQueueBytes.
const (
	DefaultDeviceQueue      = 65536
	DefaultDeviceQueueBytes = 16 << 20
)

// recordOverhead is what a queued record costs besides its topic and
// payload, roughly.
const recordOverhead = 80

// deviceModel owns the hub's devices.Model.
type deviceModel struct {
	cfg      devices.Config
	maxQueue int         // records
	maxBytes int         // of the records queued (recordOverhead each, and their topics and payloads)
	state    *stateStore // the values a rebuild starts from
	stats    *counters
	views    *deviceViews // who sees what, and the sessions that follow devices

	// The queue, under qmu: Observe appends; the worker takes it whole.
	qmu     sync.Mutex
	queue   []Record // at most maxQueue records, maxBytes bytes
	bytes   int
	spare   []Record // the worker's last batch, emptied, for reuse
	rebuild bool     // the queue overflowed: rebuild before applying it
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	// working is set while the worker takes and processes a batch, up to
	// the last frame it sends: with an empty queue, its being unset says
	// that everything observed so far has reached the followers.
	working atomic.Bool

	// The model, under mu (Model is not safe for concurrent use): applied
	// by the worker, read by requests (lists, commands).
	mu      sync.Mutex
	model   *devices.Model
	applied uint64        // the last event the model has seen
	earlier devices.Stats // the refusals of the models rebuilds replaced

	// The worker's own: what each known device looked like when last sent,
	// for the removals' ACL checks; at most the model's MaxDevices entries.
	known map[string]devices.Device
	// The worker's own: the set of devices process fills, emptied and
	// reused (its room: the most devices one batch changed).
	changed *changeSet
	// The worker's own: copies of devices whose storage publish reuses
	// (devices.Model.DeviceInto), the ones it replaced in known; at most
	// applyChunk.
	scratch []devices.Device
}

func newDeviceModel(cfg devices.Config, maxQueue, maxBytes int, state *stateStore, views *deviceViews, stats *counters) *deviceModel {
	return &deviceModel{
		cfg: cfg, maxQueue: maxQueue, maxBytes: maxBytes, state: state, views: views, stats: stats,
		wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		model: devices.New(cfg), known: make(map[string]devices.Device), changed: newChangeSet(),
	}
}

// Observe queues r for the worker (see Observer): O(1), never blocks.
func (dm *deviceModel) Observe(r Record) {
	size := recordOverhead + len(r.Topic) + len(r.Payload)
	dm.qmu.Lock()
	if len(dm.queue) >= dm.maxQueue || len(dm.queue) > 0 && dm.bytes+size > dm.maxBytes {
		// The worker is far behind: what is queued is dropped, and the
		// worker starts again from the last values, which have it.
		clear(dm.queue)
		dm.queue, dm.bytes = dm.queue[:0], 0
		if !dm.rebuild {
			dm.rebuild = true
			dm.stats.modelOverflows.Add(1)
		}
	}
	dm.queue = append(dm.queue, r)
	dm.bytes += size
	dm.qmu.Unlock()
	select {
	case dm.wake <- struct{}{}:
	default:
	}
}

// start builds the model from the last values (restored from an earlier
// run, or none) and starts the worker. Call it before the hub takes events.
func (dm *deviceModel) start() {
	dm.rebuildFromState()
	var ids []string
	for _, d := range dm.devices() {
		ids = append(ids, d.ID)
	}
	dm.publish(ids) // no session follows yet: this fills known
	go dm.run()
}

// close stops the worker and waits for it: at most the chunk it is
// applying (applyChunk records).
func (dm *deviceModel) close() {
	close(dm.stop)
	<-dm.done
}

// gatherDelay is how long the worker, woken by a record, lets more records
// queue before it takes them. Woken by each record, it would apply them one
// at a time (a batch has a fixed cost: the lock, the change set, the
// followers' frames and the refusal counters) and, on one core, run ahead of
// the flushers after every device message. A device's followers see it this
// much later than its topic's own frames, which do not wait.
const gatherDelay = 5 * time.Millisecond

func (dm *deviceModel) run() {
	defer close(dm.done)
	gather := time.NewTimer(gatherDelay)
	defer gather.Stop()
	for {
		select {
		case <-dm.stop:
			return
		case <-dm.wake:
		}
		dm.working.Store(true)
		gather.Reset(gatherDelay)
		select {
		case <-dm.stop:
			return
		case <-gather.C:
		}
		batch, rebuild := dm.take()
		dm.process(batch, rebuild)
		dm.working.Store(false)
	}
}

// take moves out the queue, and whether it overflowed since the last take.
func (dm *deviceModel) take() ([]Record, bool) {
	dm.qmu.Lock()
	defer dm.qmu.Unlock()
	batch, rebuild := dm.queue, dm.rebuild
	dm.queue, dm.spare, dm.rebuild, dm.bytes = dm.spare[:0], nil, false, 0
	return batch, rebuild
}

// applyChunk is how many records the worker applies per hold of the
// model's lock, with one devices.Model.ApplyAll (which builds each device
// the chunk changes once), so that a command or a list waits for a few
// hundred records at most; and how many devices publish reads per hold.
const applyChunk = 256

// process applies one batch (after a rebuild, when the queue overflowed)
// and sends every device it changed, once. When the hub closes, it stops
// after the chunk it is applying: what is left would reach no one.
func (dm *deviceModel) process(batch []Record, rebuild bool) {
	changed := dm.changed
	changed.reset()
	if rebuild {
		for id := range dm.known {
			changed.add(id)
		}
		dm.rebuildFromState()
		dm.stats.modelRebuilds.Add(1)
	}
	all := batch
	msgs := make([]devices.Message, 0, min(len(batch), applyChunk))
	for len(batch) > 0 {
		select {
		case <-dm.stop:
			return
		default:
		}
		n := min(len(batch), applyChunk)
		dm.mu.Lock()
		msgs = msgs[:0]
		for i := range batch[:n] {
			r := &batch[i]
			if r.Seq <= dm.applied {
				continue // in the values the model was rebuilt from
			}
			dm.applied = r.Seq
			payload, isJSON := modelPayload(r.Payload, r.Text)
			msgs = append(msgs, devices.Message{Topic: r.Topic, Payload: payload, JSON: isJSON, Retained: r.Retained, Time: r.Time})
		}
		ch := dm.model.ApplyAll(msgs)
		dm.mu.Unlock()
		changed.addAll(ch.Updated)
		changed.addAll(ch.Removed)
		clear(batch[:n]) // let the payloads go
		clear(msgs)
		batch = batch[n:]
	}
	if rebuild {
		for _, d := range dm.devices() {
			changed.add(d.ID)
		}
	}
	dm.qmu.Lock()
	if dm.spare == nil {
		dm.spare = all[:0]
	}
	dm.qmu.Unlock()
	dm.publish(changed.ids)
}

// modelPayload is the MQTT payload of a record's JSON value (mqttPayload),
// and whether it is that value itself: valid JSON, which the model then
// does not check again (not text, nor bytes decoded from {"$base64": ...}).
func modelPayload(p json.RawMessage, text bool) ([]byte, bool) {
	payload := mqttPayload(p, text)
	same := len(payload) > 0 && len(payload) == len(p) && &payload[0] == &p[0]
	return payload, same && !text
}

// rebuildFromState replaces the model with one built from the state
// store's last values, in the order they came.
func (dm *deviceModel) rebuildFromState() {
	snap, at := dm.state.snapshotAt()
	slices.SortFunc(snap, func(a, b *Value) int { return cmp.Compare(a.seq, b.seq) })
	msgs := make([]devices.Message, len(snap))
	for i, v := range snap {
		payload, isJSON := modelPayload(v.Payload, v.text)
		msgs[i] = devices.Message{Topic: v.Topic, Payload: payload, JSON: isJSON, Retained: v.Retained, Time: v.Time}
	}
	m := devices.New(dm.cfg)
	m.ApplyAll(msgs) // each device built once, however many messages declare it
	dm.mu.Lock()
	dm.earlier = addRefusals(dm.earlier, dm.model.Refusals())
	dm.model, dm.applied = m, at
	dm.mu.Unlock()
}

// publish sends the devices of ids (changed or removed) to the followers,
// and keeps what they looked like. A device as it was last sent is not
// sent again: after a rebuild, which lists every device, only those that
// changed go out, not the whole model to every follower.
//
// The copy a device replaces in known is no one else's (the views keep
// nothing of what they send): the next copy is made in its storage.
func (dm *deviceModel) publish(ids []string) {
	n := min(len(ids), applyChunk)
	if len(dm.scratch) < n {
		dm.scratch = append(dm.scratch, make([]devices.Device, n-len(dm.scratch))...)
	}
	now, found := dm.scratch[:n], make([]bool, n)
	for start := 0; start < len(ids); start += applyChunk {
		chunk := ids[start:min(len(ids), start+applyChunk)]
		dm.mu.Lock()
		for i, id := range chunk {
			found[i] = dm.model.DeviceInto(id, &now[i])
		}
		dm.mu.Unlock()
		for i, id := range chunk {
			if found[i] {
				old, sent := dm.known[id]
				dm.known[id] = now[i]
				if !sent || !sameDevice(&old, &now[i]) {
					dm.views.sendDevice(now[i])
				}
				now[i] = old // free now: the next copy reuses it
			} else if old, ok := dm.known[id]; ok {
				delete(dm.known, id)
				dm.views.sendRemoved(old)
			}
		}
	}
	dm.stats.devicesKnown.Store(int64(len(dm.known)))
	dm.mu.Lock()
	s := addRefusals(dm.earlier, dm.model.Refusals()) // not Stats: a walk over every device, after every batch
	dm.mu.Unlock()
	dm.stats.modelRefused.Store(&map[string]uint64{
		"devices": s.RefusedDevices, "entities": s.RefusedEntities, "topics": s.RefusedTopics,
		"oversized": s.OversizedDiscoveries, "malformed": s.MalformedDiscoveries,
	})
}

// sameDevice reports whether a and b are equal, as reflect.DeepEqual would
// say (times with ==: the same instant, monotonic reading and location),
// without its cost: the worker compares every device it publishes.
func sameDevice(a, b *devices.Device) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Convention == b.Convention && a.Model == b.Model &&
		a.Manufacturer == b.Manufacturer && a.ViaDevice == b.ViaDevice && a.Area == b.Area &&
		a.Availability == b.Availability && sameFloat(a.Battery, b.Battery) &&
		sameFloat(a.LinkQuality, b.LinkQuality) && a.Updated == b.Updated &&
		sameSlice(a.Entities, b.Entities, sameEntity)
}

func sameEntity(a, b *devices.Entity) bool {
	return a.ID == b.ID && a.Name == b.Name && a.Kind == b.Kind && a.Type == b.Type && a.Unit == b.Unit &&
		a.DeviceClass == b.DeviceClass && a.StateClass == b.StateClass && a.Topic == b.Topic &&
		a.Field == b.Field && (a.Value == nil) == (b.Value == nil) && bytes.Equal(a.Value, b.Value) &&
		a.Updated == b.Updated && a.Note == b.Note && sameControl(a.Control, b.Control)
}

func sameControl(a, b *devices.Control) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Topic == b.Topic && sameFloat(a.Min, b.Min) && sameFloat(a.Max, b.Max) && sameFloat(a.Step, b.Step) &&
		sameSlice(a.Options, b.Options, func(x, y *string) bool { return *x == *y })
}

func sameFloat(a, b *float64) bool {
	if a == b || a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// sameSlice is DeepEqual's equality of slices: both nil, or both not and
// equal element by element.
func sameSlice[T any](a, b []T, same func(x, y *T) bool) bool {
	if (a == nil) != (b == nil) || len(a) != len(b) {
		return false
	}
	for i := range a {
		if !same(&a[i], &b[i]) {
			return false
		}
	}
	return true
}

// addRefusals adds the refusal counters of b to a.
func addRefusals(a, b devices.Stats) devices.Stats {
	a.RefusedDevices += b.RefusedDevices
	a.RefusedEntities += b.RefusedEntities
	a.RefusedTopics += b.RefusedTopics
	a.OversizedDiscoveries += b.OversizedDiscoveries
	a.MalformedDiscoveries += b.MalformedDiscoveries
	return a
}

// devices returns a copy of every device, sorted by id.
func (dm *deviceModel) devices() []devices.Device {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	return dm.model.Devices()
}

// device returns a copy of one device.
func (dm *deviceModel) device(id string) (devices.Device, bool) {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	return dm.model.Device(id)
}

// command encodes a command for a device's entity (devices.Model.Command);
// errors are *Error with the command codes.
func (dm *deviceModel) command(deviceID, entityID string, value json.RawMessage) (devices.Command, error) {
	dm.mu.Lock()
	cmd, err := dm.model.Command(deviceID, entityID, value)
	dm.mu.Unlock()
	if err != nil {
		return cmd, commandError(err)
	}
	return cmd, nil
}

// confirmFor is what confirms a raw publish on a command topic the model
// knows (devices.Model.ConfirmFor).
func (dm *deviceModel) confirmFor(topic string, payload []byte) (devices.Confirm, bool) {
	dm.mu.Lock()
	defer dm.mu.Unlock()
	return dm.model.ConfirmFor(topic, payload)
}

// commandError maps the model's errors to Clown.Talk codes.
func commandError(err error) *Error {
	for _, m := range []struct {
		err  error
		code string
	}{
		{devices.ErrUnknownDevice, CodeUnknownDevice},
		{devices.ErrUnknownEntity, CodeUnknownEntity},
		{devices.ErrNotControl, CodeNotControl},
		{devices.ErrBadValue, CodeBadValue},
		{devices.ErrOffline, CodeOffline},
	} {
		if errors.Is(err, m.err) {
			return &Error{Code: m.code, Message: err.Error()}
		}
	}
	return &Error{Code: CodeBadValue, Message: err.Error()}
}

// changeSet is the ids of the devices one batch changed, each once, in
// the order they first changed; at most the records of a batch plus the
// devices known.
type changeSet struct {
	seen map[string]struct{}
	ids  []string
}

func newChangeSet() *changeSet { return &changeSet{seen: make(map[string]struct{})} }

// reset empties s, keeping its room.
func (s *changeSet) reset() {
	clear(s.seen)
	clear(s.ids)
	s.ids = s.ids[:0]
}

func (s *changeSet) add(id string) {
	if _, ok := s.seen[id]; !ok {
		s.seen[id] = struct{}{}
		s.ids = append(s.ids, id)
	}
}

func (s *changeSet) addAll(ids []string) {
	for _, id := range ids {
		s.add(id)
	}
}
