// EventBatch gathers a HubClient's events (see client.js) in the
// SharedWorker and hands them to the tabs together: one message per batch,
// at most every BATCH_PACE ms and at most BATCH_MAX events each, instead of
// one message per event. 500 devices make about 2,500 events a second, and
// every message costs the tab a task of its own and the browser's work to
// deliver it. Within a batch:
//   - a device's changes come as its latest one (a device event carries the
//     whole device, so the earlier ones say nothing more), at the place of
//     that latest one;
//   - the status comes as its latest (it is whole too);
//   - lines that follow lines come as one "lines" event, in order.
// Every other event keeps its place. A tab gets {type: "batch", events}.

export const BATCH_PACE = 25; // ms an event may wait for others
export const BATCH_MAX = 100; // events in one batch: a tab handles one batch in one task (100: about 10 ms)

export class EventBatch {
  #send;
  #pace;
  #events = []; // the batch; an event replaced by a later one is null. ≤ BATCH_MAX live ones, plus those replaced
  #live = 0; // events of #events that are not null
  #latest = new Map(); // device id (or "" for the status) → index of its latest event in #events, ≤ #events
  #lines = -1; // index of the "lines" event that later lines join, while it is the last live event
  #timer = 0;

  // send(batch) delivers a batch to the tabs.
  constructor(send, pace = BATCH_PACE) {
    this.#send = send;
    this.#pace = pace;
  }

  get size() {
    return this.#live;
  }

  add(ev) {
    const key = ev.type === "device" ? ev.device?.id : ev.type === "status" ? "" : undefined;
    if (key !== undefined) {
      const i = this.#latest.get(key);
      if (i !== undefined) {
        this.#events[i] = null;
        this.#live--;
      }
      this.#latest.set(key, this.#events.length);
      this.#push(ev);
    } else if (ev.type === "lines") {
      if (this.#lines >= 0 && this.#lines === this.#lastLive()) {
        this.#events[this.#lines].lines.push(...ev.lines);
      } else {
        this.#lines = this.#events.length;
        this.#push({ type: "lines", lines: [...ev.lines] }); // its own list: the client's is not to be changed
      }
    } else {
      this.#push(ev);
    }
    if (this.#live >= BATCH_MAX) this.flush();
    else if (!this.#timer) this.#timer = setTimeout(() => this.flush(), this.#pace);
  }

  // flush sends what waits now.
  flush() {
    clearTimeout(this.#timer);
    this.#timer = 0;
    const events = this.#events.filter((ev) => ev !== null);
    this.#events = [];
    this.#live = 0;
    this.#latest.clear();
    this.#lines = -1;
    if (events.length) this.#send({ type: "batch", events });
  }

  #push(ev) {
    this.#events.push(ev);
    this.#live++;
  }

  #lastLive() {
    for (let i = this.#events.length - 1; i >= 0; i--) if (this.#events[i] !== null) return i;
    return -1;
  }
}
