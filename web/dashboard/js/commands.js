// How a command is doing, in words: waiting, confirmed, or why it failed.

import { LOST, NOT_CONNECTED, NO_ANSWER } from "./session.js";
import { failureText } from "./model.js";

// describe says how a command ended, or that it is still waiting: briefly
// for a tile, or in full.
export function describe(cmd, full = true) {
  if (!cmd) return "";
  switch (cmd.state) {
    case "pending":
      return full ? "Sent; waiting for the device to confirm…" : "Waiting for the device…";
    case "ok":
      return `Confirmed${full ? " by the device" : ""} in ${cmd.ms < 1 ? "<1" : cmd.ms} ms`;
    case "sent":
      return full ? "Sent; this hub does not confirm commands" : "Sent, unconfirmed";
    case "failed":
      return `Failed: ${failure(cmd, full)}`;
  }
  return "";
}

// failure is the reason from the hub's code (docs/devices.md) when it has
// one, with the hub's own words in full; else what the page knows.
function failure(cmd, full) {
  const text = failureText(cmd.code, cmd.reported, full);
  if (text) {
    const words = cmd.error && cmd.error !== cmd.code && !/^(state differs|timeout)$/.test(cmd.error) ? cmd.error : "";
    return full && words ? `${text} (${words})` : text;
  }
  switch (cmd.error) {
    case LOST:
      return full ? LOST : "connection lost";
    case NOT_CONNECTED:
      return full ? "not connected to the hub, so it was not sent" : "not connected";
    case NO_ANSWER:
      return full ? `${NO_ANSWER}; it may or may not have been carried out` : "no answer from the hub";
    default:
      return cmd.error || "unknown reason";
  }
}
