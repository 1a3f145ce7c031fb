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
}

export type CommandErrorCode = "timeout" | "state-differs" | "offline" | "forbidden" | "unavailable" | "connection-lost";

/** How a command or a request failed. */
export declare class CommandError extends Error {
  constructor(code: string, message: string, details?: { topic?: string; state?: any });
  /** One of CommandErrorCode, or another of the hub's error codes ("bad-topic", "limit", ...). */
  code: CommandErrorCode | (string & {});
  topic: string;
  /** What the device reported instead, for "state-differs". */
  state?: any;
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
  /** Follow the device model ("device" events). Default true. */
  devices?: boolean;
  /** Emit "state" with the last values when the first session opens. Default true. */
  state?: boolean;
  /** ms of silence after which the connection is taken for dead. Default 45000. */
  heartbeat?: number;
  /** ms a connection may take to open. Default 10000. */
  connectTimeout?: number;
  /** ms a command waits for its confirmation, at most. Default 10000. */
  commandTimeout?: number;
  /** Reconnection: full jitter over initial·2^attempt ms, at most max; a connection up for stable ms resets it. */
  backoff?: { initial?: number; max?: number; stable?: number };
  /** Part of the shared worker's name: clients of different names share no connection. */
  name?: string;
}

export interface CommandResult {
  ok: true;
  /** ms from the command to its confirmation. */
  ms: number;
}

export interface MotehubClient {
  /** The connection's state now (also given by "status" events). */
  readonly status: Status;
  /** The id of the last event delivered. */
  readonly lastId: string;
  /** The subscriptions. */
  readonly filters: string[];
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
  /** Sends a command (a topic ending in "/set", or one the device model knows) and waits until the device confirms it. Rejects with a CommandError. */
  command(topic: string, payload: any, options?: { timeout?: number }): Promise<CommandResult>;
  /** Sends a message to the devices; problems come as "error" events. */
  publish(topic: string, payload: any): void;
  /** Ends the session; pending commands reject with "connection-lost". */
  close(): void;
}

/** Opens a session with the hub at url: "http://host:8080", "/", or "ws://host/ws/base". */
export declare function connect(url?: string, options?: ConnectOptions): MotehubClient;

/** Whether an MQTT topic filter matches a topic. */
export declare function matchFilter(filter: string, topic: string): boolean;
