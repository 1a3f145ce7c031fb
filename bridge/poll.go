package bridge

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/motehub/motehub/auth"
	"github.com/motehub/motehub/topics"
)

// PollResult answers a long poll. Messages are Clown.Talk frames
// [topic, payload, {"id": ...}]; ID is what to send as since next time.
// With Resync, since could not be honoured and Messages are the last values.
type PollResult struct {
	ID       string            `json:"id"`
	Messages []json.RawMessage `json:"messages"`
	Resync   *ResyncNotice     `json:"resync,omitempty"`
}

// ResyncNotice says why a client could not resume: Code in a word a page
// maps to its own sentence (see resync.go), Reason in English for logs and
// people reading raw frames.
type ResyncNotice struct {
	Reason string `json:"reason"`
	Code   string `json:"code"`
}

// maxPollMessages bounds one long poll's answer; the rest comes with the next.
const maxPollMessages = 1000

// Poll is a long poll of the event log, for clients behind proxies that
// buffer streams. It answers at once when messages after q.Since are waiting,
// else when one arrives or wait has passed; the resume and resync rules are
// those of SSE. Errors are *Error, or ctx's error.
func (h *Hub) Poll(ctx context.Context, who auth.Identity, base string, q StreamQuery, wait time.Duration) (PollResult, error) {
	if err := h.checkQuery(base, q.Filters); err != nil {
		return PollResult{}, err
	}
	check, err := authorize(h.authz, &h.stats, who, base, q.Filters)
	if err != nil {
		return PollResult{}, err
	}
	filters := make([]string, len(q.Filters))
	for i, f := range q.Filters {
		filters[i] = topics.Mount(base, f)
	}
	wait = min(max(wait, 0), h.cfg.MaxPollWait)
	h.interest.follow(ctx, base, q.Filters, wait+interestWait)
	timer := time.NewTimer(wait)
	defer timer.Stop()

	after, resync := h.fan.resumePoint(q.Since, base, q.Filters)
	if resync.Code != "" {
		return h.resyncPoll(who, base, q.Filters, resync), nil
	}

	for {
		res, gone := h.scanLog(base, filters, after, func(topic string) bool {
			return !check || h.authz.Allowed(who, auth.Read, topic)
		})
		if gone {
			return h.resyncPoll(who, base, q.Filters, resyncTooOld), nil
		}
		if len(res.Messages) > 0 {
			return res, nil
		}
		_, after, _ = parseEventID(res.ID)
		select {
		case <-h.fan.eventsAfter(after):
			if h.fan.isClosed() {
				return res, nil
			}
		case <-timer.C:
			return res, nil
		case <-ctx.Done():
			return PollResult{}, ctx.Err()
		}
	}
}

// scanLog collects the messages after `after` that match filters and that
// readable lets through, up to maxPollMessages; ID is the last event it
// looked at.
func (h *Hub) scanLog(base string, filters []string, after uint64, readable func(topic string) bool) (PollResult, bool) {
	res := PollResult{Messages: []json.RawMessage{}}
	var entries []logEntry
	match := newFilterSet("", filters) // absolute filters
	for len(res.Messages) < maxPollMessages {
		var err error
		entries, err = h.events.read(entries[:0], after, math.MaxUint64, replayChunk)
		if errors.Is(err, errGone) {
			return res, true
		}
		if len(entries) == 0 {
			break
		}
		for i := range entries {
			e := &entries[i]
			after = e.seq
			if match.match(e.topic) && readable(e.topic) {
				if rel, ok := topics.Unmount(base, e.topic); ok {
					res.Messages = append(res.Messages, encodeEvent(nil, formatLinesIDs, rel, e.payload, false, h.epoch, e.seq))
				}
				if len(res.Messages) == maxPollMessages {
					break
				}
			}
		}
	}
	for i, m := range res.Messages {
		res.Messages[i] = m[:len(m)-1] // a line without its newline is a JSON value
	}
	res.ID = eventID(h.epoch, after)
	return res, false
}

// resyncPoll answers a poll that cannot resume with the last values, read
// outside every lock.
func (h *Hub) resyncPoll(who auth.Identity, base string, filters []string, reason ResyncNotice) PollResult {
	st := h.readState(who, base, filters, 0)
	res := PollResult{ID: st.ID, Messages: make([]json.RawMessage, 0, len(st.Values)), Resync: &reason}
	for _, v := range st.Values {
		line := appendFrame(nil, v.Topic, v.Payload, "")
		res.Messages = append(res.Messages, line[:len(line)-1])
	}
	return res
}
