// What a resync means to the person looking at the page. The hub says why
// a session could not resume in a code (bridge/resync.go) and in words for
// developers; the page says what happened in its own words, and falls back
// on the hub's for a code it does not know.

const CURRENT = "values are current";
const MISSING = "are not in the log";

const SENTENCES = {
  "restarted": `The hub restarted; ${CURRENT}, messages sent while it was down ${MISSING}.`,
  "broker-gap": `The hub lost its connection to the broker for a while; ${CURRENT}, messages sent meanwhile ${MISSING}.`,
  "broker-connected": "The hub connected to its broker; the values shown are current.",
  "too-old": `This page was away too long for the hub to replay what it missed; ${CURRENT}, older messages ${MISSING}.`,
  "not-followed": `The hub was not following these topics while this page was away; ${CURRENT}, messages sent meanwhile ${MISSING}.`,
  "conflated": `This page fell behind and the hub kept only the newest value of each topic; ${CURRENT}, some messages ${MISSING}.`,
  "invalid-id": `The hub did not recognise where this page left off; ${CURRENT}, messages missed meanwhile ${MISSING}.`,
  "unknown-id": `The hub did not recognise where this page left off; ${CURRENT}, messages missed meanwhile ${MISSING}.`,
};

// resyncText is the sentence for a resync notice {code, reason}.
export function resyncText(notice) {
  const known = typeof notice?.code === "string" && Object.hasOwn(SENTENCES, notice.code);
  if (known) return SENTENCES[notice.code];
  const reason = typeof notice?.reason === "string" && notice.reason ? notice.reason : "unknown reason";
  return `Messages missed while disconnected could not be replayed (${reason}). The values shown are the current ones.`;
}
