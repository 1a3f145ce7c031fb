// Every member of motehub.d.ts used with its types: cmd/hub's
// TestMotehubDTS type-checks this file with tsc --strict (it is never run).
// Each @ts-expect-error line must fail to type-check: a declaration that
// accepted it would make the directive itself an error.

import { CommandError, VERSION, connect, matchFilter } from "../../dashboard/motehub.js";
import type {
	CommandErrorCode, CommandResult, ConnectOptions, ConnectionState, Device, Events, HubError, Message, MotehubClient,
	ResyncEvent, StateEvent, Status, TransportName, Value,
} from "../../dashboard/motehub.js";

const storage = new Map<string, string>();
const options: ConnectOptions = {
	subscribe: ["nodes/#"], auth: {user: "alice", password: "pw"}, shared: true, transports: ["websocket", "sse", "poll"],
	WebSocket: class {}, fetch, storage: {getItem: (k) => storage.get(k) ?? null, setItem: (k, v) => void storage.set(k, v)},
	since: "abc-1", devices: true, state: true, heartbeat: 45_000, connectTimeout: 10_000, commandTimeout: 10_000,
	backoff: {initial: 500, max: 30_000, stable: 10_000}, name: "jstest",
};
const tokenAuth: ConnectOptions["auth"][] = ["token", {token: "t"}];
const hub: MotehubClient = connect("http://127.0.0.1:8080", options);
connect();
connect("/ws/nodes/bridge/0", {auth: tokenAuth[0]});

const version: string = VERSION;
const matches: boolean = matchFilter("a/+", "a/b");
const status: Status = hub.status;
const state: ConnectionState = status.state;
const transport: TransportName | "" = status.transport;
const numbers: number[] = [status.attempt, status.retryIn];
const reason: string = status.reason;
const lastId: string = hub.lastId;
const filters: string[] = hub.filters;

const stop: () => void = hub.on("message", (m: Message) => {
	const fields: [string, unknown, string, number, boolean] = [m.topic, m.payload, m.id, m.time, m.retained];
	void fields;
});
hub.on("state", (s: StateEvent) => void [s.values.map((v: Value) => [v.topic, v.payload, v.time, v.retained]), s.resync satisfies boolean]);
hub.on("resync", (r: ResyncEvent) => void [r.code satisfies string, r.reason satisfies string, r.values satisfies Value[]]);
hub.on("status", (s) => void (s.state satisfies ConnectionState));
hub.on("device", (d: Device) => void [d.id satisfies string, d.name, d.entities, d.removed]);
hub.on("error", (e: HubError) => void [e.code, e.message, e.topic].join());
stop();

async function use(client: MotehubClient): Promise<void> {
	await client.subscribe(["a/#"]);
	await client.subscribe("b/#");
	await client.unsubscribe("b/#");
	const values: Value[] = await client.state("a/#");
	const all: Value[] = await client.state();
	const devices: Device[] = await client.devices();
	const done: CommandResult = await client.command("a/relay/set", {state: true}, {timeout: 2000});
	const ok: true = done.ok;
	const ms: number = done.ms;
	try {
		await client.command("a/relay/set", {state: false});
	} catch (err) {
		if (err instanceof CommandError) {
			const code: CommandErrorCode | string = err.code;
			const fields: [string, string, unknown, string] = [err.topic, err.message, err.state, err.name];
			void [code, fields];
		}
	}
	client.publish("a/b", 1);
	client.close();
	void [values, all, devices, ok, ms];
}
const err = new CommandError("timeout", "late", {topic: "a/set", state: false});
const events: keyof Events = "resync";
void [use, err, events, version, matches, state, transport, numbers, reason, lastId, filters];

// What the declarations refuse.
// @ts-expect-error: no such event
hub.on("mesage", () => {});
// @ts-expect-error: a message listener gets a Message, not a Status
hub.on("message", (s: Status) => s.retryIn);
// @ts-expect-error: a command needs a topic
void hub.command();
// @ts-expect-error: transports are websocket, sse or poll
connect("/", {transports: ["carrier-pigeon"]});
// @ts-expect-error: the status is read-only
hub.status = status;
// @ts-expect-error: publish returns nothing to await on
const published: Promise<void> = hub.publish("a", 1);
void published;
