// Type declarations of motehub.js, the hub's client library (docs/client.md).

export declare const VERSION: string;

/** A message of the stream. */
export interface Message {
  /** Relative to the base of the address connected to. */
  topic: string;
  /** Any JSON value: the MQTT payload as the hub shows it. */
  payload: any;
  /** The hub's event id ("epoch-seq"): a session resumes after it. */
  id: string;
  /** When it arrived, in ms since the epoch. */
  time: number;
  retained: boolean;
}

/** A topic's last value. */
export interface Value {
  topic: string;
  payload: any;
  /** When the hub got it, in ms since the epoch (never ahead of this clock). */
  time: number;
  retained: boolean;
}

export type ConnectionState = "connecting" | "open" | "closed" | "offline" | "unavailable";
export type TransportName = "websocket" | "sse" | "poll";

export interface Status {
  state: ConnectionState;
  /** The transport in use or being tried. */
  transport: TransportName | "";
  /** Failed attempts since the last connection that stayed up. */
  attempt: number;
  /** ms until the next attempt (0 when none is planned). */
  retryIn: number;
  /** Why the last connection ended, or why the hub cannot serve. */
  reason: string;
  /** The WebSocket close code of the last connection that ended (1001: the hub shut down), kept while the next is open; 0 for none or another transport. */
  code: number;
  /** Tabs sharing the connection (shared: true); 1 for a connection of its own. */
  tabs: number;
}

/** Who the session acts as and what they may do, as the hub said when it opened (over SSE or long poll: GET /api/me). */
export interface Session {
  /** The hub's name for the session (its logs name it); "" over SSE or long poll. */
  id: string;
  /** The hub's event log epoch: event ids start with it. */
  epoch: string;
  /** This run of the hub: another one after a reconnect says it restarted; "" over SSE or long poll. */
  boot: string;
  /** The user ("anonymous" when not logged in). */
  user: string;
  /** No users file: everyone may read and write everything. */
  open: boolean;
  /** The user may use the admin API. */
  admin: boolean;
  /** The users file's rules for the user: MQTT filters they may read or write. */
  rules: { filter: string; read: boolean; write: boolean }[];
  /** The session was asked to resume after an event id (a "resync" event says when it could not). */
  resumed: boolean;
}

/** A command made through this connection (by any tab sharing it), as it goes. */
export interface CommandEvent {
  /** The command's id: the same in the result or the CommandError of its promise. */
  id: string;
  /** The command topic; "clown.talk/-/command" for a command to a device of the model. */
  topic: string;
  /** For a command to a device of the model: the device and entity. */
  device?: string;
  entity?: string;
  payload: any;
  /** "pending" once sent, then "ok" or "failed". */
  state: "pending" | "ok" | "failed";
  /** Why it failed: a CommandErrorCode or another of the hub's codes; "" otherwise. */
  code: string;
  message: string;
  /** ms until the device confirmed. */
  ms: number;
  /** What the device reported instead ("state-differs"). */
  reported?: any;
}

/** A frame to or from the hub that is not a message of the stream (with the frames option). */
export interface Frame {
  /** "out": sent to the hub (publishes, commands, requests); "in": a control frame of the hub (answers, acks, errors). */
  dir: "in" | "out";
  topic: string;
  payload: any;
  time: number;
}

export interface StateEvent {
  values: Value[];
  /** true after a resync: the values replace what the page knew. */
  resync: boolean;
}

export interface ResyncEvent {
  /** "restarted", "too-old", "unknown-id", "invalid-id", "broker-gap", "not-followed", "conflated", ... */
  code: string;
  reason: string;
  /** The last values now: what replaces the messages that were missed. */
  values: Value[];
}

export interface HubError {
  code: string;
  message: string;
  topic: string;
}

/** A device of the hub's model (docs/devices.md). */
export interface Device {
  id: string;
  name?: string;
  entities: any[];
  removed?: boolean;
  [key: string]: any;
}

export interface Events {
  message: Message;
  state: StateEvent;
  resync: ResyncEvent;
  status: Status;
  device: Device;
  error: HubError;
  session: Session;
  command: CommandEvent;
  frame: Frame;
}

export type CommandErrorCode = "timeout" | "state-differs" | "offline" | "forbidden" | "unavailable" | "connection-lost";

/** How a command or a request failed. */
export declare class CommandError extends Error {
  constructor(code: string, message: string, details?: { topic?: string; state?: any; id?: string });
  /** One of CommandErrorCode, or another of the hub's error codes ("bad-topic", "limit", ...). */
  code: CommandErrorCode | (string & {});
  topic: string;
  /** What the device reported instead, for "state-differs". */
  state?: any;
  /** The command's id (as in "command" events); "" for a request. */
  id: string;
}

export interface ConnectOptions {
  /** Topic filters to follow. Default ["#"]. */
  subscribe?: string | string[];
  /** Credentials: a bearer token, or {token}, or {user, password}. Browsers send their cookies anyway. */
  auth?: string | { token: string } | { user: string; password?: string };
  /** Share one connection between the tabs of this browser (SharedWorker). Default false. */
  shared?: boolean;
  /** Transports to try in this order. Default ["websocket", "sse", "poll"]. */
  transports?: TransportName[];
  /** The WebSocket class, where there is no global one (Node 20: the ws package). */
  WebSocket?: any;
  /** The fetch function. Default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Where the last event id is kept. Default sessionStorage when there is one; null: nowhere. */
  storage?: Pick<Storage, "getItem" | "setItem"> | null;
  /** Resume after this event id (instead of the stored one). */
  since?: string;
  /** Follow the device model ("device" events, over the WebSocket and SSE, not long poll). Default true. */
  devices?: boolean;
  /** Emit "state" with the last values when the first session opens. Default true. */
  state?: boolean;
  /** ms of silence after which the connection is taken for dead. Default 45000. */
  heartbeat?: number;
  /** ms a connection may take to open; requests made while it opens wait as long. Default 10000. */
  connectTimeout?: number;
  /** ms a command waits for its confirmation, at most. Default 10000. */
  commandTimeout?: number;
  /**
   * Reconnection: full jitter over initial·2^attempt ms, at most max; a connection up for stable ms resets it.
   * On a fallback the WebSocket is tried again after upgrade ms, doubling up to upgradeMax (default 10000, 300000).
   */
  backoff?: { initial?: number; max?: number; stable?: number; upgrade?: number; upgradeMax?: number };
  /** Part of the shared worker's name: clients of different names share no connection. */
  name?: string;
  /** Emit "frame" events: what is sent to the hub and its control frames (for a log of the conversation). Default false. */
  frames?: boolean;
}

export interface CommandResult {
  ok: true;
  /** ms from the command to its confirmation. */
  ms: number;
  /** The command's id, as in "command" events. */
  id: string;
}

/** A control of a device of the hub's model (docs/devices.md): the hub encodes the value as the device expects. */
export interface DeviceControl {
  device: string;
  entity: string;
}

export interface MotehubClient {
  /** The connection's state now (also given by "status" events). */
  readonly status: Status;
  /** The id of the last event delivered. */
  readonly lastId: string;
  /** The subscriptions. */
  readonly filters: string[];
  /** Who the session acts as (also given by "session" events); null until a WebSocket session opened. */
  readonly session: Session | null;
  /** "shared": through the shared worker; "direct": a connection of this page's own. */
  readonly mode: "shared" | "direct";
  /** Listens to an event; returns the function that stops listening. */
  on<K extends keyof Events>(event: K, fn: (value: Events[K]) => void): () => void;
  /** Follows more filters (kept across reconnects). */
  subscribe(filters: string | string[]): Promise<void>;
  /** Stops following filters. */
  unsubscribe(filters: string | string[]): Promise<void>;
  /** The last values of the topics a filter (default: the subscriptions) matches. */
  state(filter?: string | string[]): Promise<Value[]>;
  /** The devices of the hub's model. */
  devices(): Promise<Device[]>;
  /**
   * Sends a command (a topic ending in "/set", or one the device model knows; or a control
   * of a device of the model, with the value as payload) and waits until the device confirms it.
   * Made while the connection opens, it waits for it (connectTimeout). Rejects with a CommandError.
   */
  command(target: string | DeviceControl, payload: any, options?: { timeout?: number }): Promise<CommandResult>;
  /** Sends a message to the devices; problems come as "error" events. */
  publish(topic: string, payload: any): void;
  /** Tries to connect now, when the client waits before its next attempt. */
  reconnect(): void;
  /** Ends the session; pending commands reject with "connection-lost". */
  close(): void;
}

/** Opens a session with the hub at url: "http://host:8080", "/", or "ws://host/ws/base". */
export declare function connect(url?: string, options?: ConnectOptions): MotehubClient;

/** Whether an MQTT topic filter matches a topic. */
export declare function matchFilter(filter: string, topic: string): boolean;
