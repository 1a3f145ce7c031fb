package bridge

// Resync codes: why a client could not resume, in a word that a page maps
// to its own sentence (the dashboard's js/resync.js), in ResyncNotice.Code
// of the resync frame, the SSE resync event and the long poll's "resync".
// A client that does not know a code shows the notice's Reason.
const (
	// ResyncRestarted: the id is from another run of the hub (it restarted
	// without its history) or from another hub.
	ResyncRestarted = "restarted"
	// ResyncInvalidID: the id is not one this hub writes.
	ResyncInvalidID = "invalid-id"
	// ResyncUnknownID: the id is of this run but ahead of its stream.
	ResyncUnknownID = "unknown-id"
	// ResyncBrokerGap: the connection to the broker was lost since the id
	// (or is lost and back now): messages published meanwhile did not
	// reach the hub.
	ResyncBrokerGap = "broker-gap"
	// ResyncBrokerConnected: the hub connected to its upstream broker and
	// starts over from the broker's values.
	ResyncBrokerConnected = "broker-connected"
	// ResyncTooOld: the events after the id have left the hub's log.
	ResyncTooOld = "too-old"
	// ResyncNotFollowed: the hub was not following the client's filters
	// all along since the id.
	ResyncNotFollowed = "not-followed"
	// ResyncConflated: the id is from a queue that kept only the newest
	// message of each topic (overflow "latest"): messages before it may be
	// missing.
	ResyncConflated = "conflated"
)

// The notices of the resyncs the fan-out decides.
var (
	resyncConflated  = ResyncNotice{Code: ResyncConflated, Reason: "the id is from messages conflated to the newest of each topic (overflow latest): events before it may be missing"}
	resyncInvalidID  = ResyncNotice{Code: ResyncInvalidID, Reason: "invalid event id"}
	resyncOtherEpoch = ResyncNotice{Code: ResyncRestarted, Reason: "unknown epoch: the id is from another hub or an earlier run without its history"}
	resyncUnknownID  = ResyncNotice{Code: ResyncUnknownID, Reason: "unknown event id"}
	resyncBrokerDown = ResyncNotice{Code: ResyncBrokerGap, Reason: "messages may have been lost since: the connection to the broker was down"}
	resyncTooOld     = ResyncNotice{Code: ResyncTooOld, Reason: "too old: the events after it have left the log"}
)
