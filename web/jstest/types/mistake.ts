// One mistake that must fail to type-check (cmd/hub's TestMotehubDTS
// checks that tsc reports it, on line 6): without it, a check of usage.ts
// that passes could also be one that checks nothing.
import { connect } from "../../dashboard/motehub.js";
const hub = connect("/");
const topic: number = (await hub.state())[0].topic;
export { topic };
