/**
 * The connection: connect, reconnect with full-jitter backoff unless the close code is
 * terminal, rejoin every room with `since`, refresh the token before it expires.
 */
import { fullJitter } from "./backoff.js";
import { closeInfo, type Reconnect } from "./codes.js";
import { Emitter } from "./events.js";
import { Room, type RoomHost } from "./room.js";
import { defaultStorage, type SessionStorage } from "./storage.js";
import { httpBase, SyncApi } from "./sync.js";
import type {
  ConnectReply,
  ErrorData,
  Json,
  Message,
  Preferences,
  PrefsReply,
  RefreshReply,
  SendReply,
  Status,
  StatusReply,
} from "./types.js";

export type ConnectionState = "disconnected" | "connecting" | "connected";
export type TokenSource = string | (() => string | Promise<string>);

/** The subset of the WebSocket API the SDK uses (browsers' and the `ws` package's). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface Options {
  /** A JWT, or a function returning one; the function is called again when a new one is needed. */
  token: TokenSource;
  /** A WebSocket constructor (default: the global one). Node 20: pass the `ws` package's. */
  websocket?: WebSocketConstructor;
  /** Where the session id is kept (default: localStorage when usable, else memory). */
  storage?: SessionStorage;
  /** The storage key of the session id (default "goldwire.session"). */
  storageKey?: string;
  /** Backoff base delay, ms (default 500). */
  minReconnectDelay?: number;
  /** Backoff cap, ms (default 20000). */
  maxReconnectDelay?: number;
  /** How long a command waits for its reply, ms (default 10000). */
  timeout?: number;
  /** Refresh the token this long before `expires_at`, ms (default 30000, at most half its life). */
  refreshAhead?: number;
  /** Send a `ping` op after this long without any frame, ms (default: the server's heartbeat). */
  pingInterval?: number;
  /** The gateway's HTTP base for `client.sync` (default: the socket URL's, `ws` → `http`, no `/ws`). */
  httpUrl?: string;
}

export interface ConnectedInfo {
  data: ConnectReply;
  /** False on the first connect, true on every reconnect. */
  reconnected: boolean;
}
export interface DisconnectedInfo {
  code: number;
  reason: string;
  /** Whether the client will reconnect by itself. */
  reconnect: boolean;
  /** The delay before the next attempt, ms (when reconnecting). */
  delay?: number;
}

export interface ClientEvents {
  connected: ConnectedInfo;
  disconnected: DisconnectedInfo;
  state: { oldState: ConnectionState; newState: ConnectionState };
  /** A `notification` for the user (also kept in their inbox). */
  notification: Message;
  /** The user's preferences changed (in this tab or another). */
  preferences: Preferences;
  /** A direct `user_message` (from `send`), not in a room. */
  message: Message;
  /** An `error` frame without a ref, or a failure the SDK could not attribute. */
  error: Error;
}

/** A failed command (`code` is the error code, or "timeout" / "disconnected"). */
export class GoldwireError extends Error {
  readonly code: string;
  readonly data: Json;
  constructor(code: string, message: string, data: Json = {}) {
    super(message);
    this.name = "GoldwireError";
    this.code = code;
    this.data = data;
  }
}

interface Pending {
  resolve: (data: unknown) => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const OPEN = 1;

export class Goldwire extends Emitter<ClientEvents> {
  state: ConnectionState = "disconnected";
  /** The last connect reply. */
  info: ConnectReply | null = null;
  /** The user's `/v2/sync` HTTP API (history, preferences, notifications, sessions). */
  readonly sync: SyncApi;

  private readonly url: string;
  private readonly opts: Required<Omit<Options, "websocket" | "storage" | "pingInterval" | "httpUrl">> & {
    pingInterval?: number;
  };
  private readonly WS: WebSocketConstructor;
  private readonly storage: SessionStorage;
  private ws: WebSocketLike | null = null;
  private token: string | null = null;
  private nextRef = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly rooms = new Map<string, Room>();
  private readonly host: RoomHost;
  private wantOpen = false;
  private everConnected = false;
  private attempts = 0;
  private authFailures = 0;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setTimeout> | null = null;
  /** How to reconnect after a close the SDK itself started (its code says nothing). */
  private ownClose: Reconnect | null = null;
  private connectWaiters: { resolve: (d: ConnectReply) => void; reject: (e: Error) => void }[] = [];
  private readyWaiters: (() => void)[] = [];

  constructor(url: string, options: Options) {
    super();
    this.url = url;
    this.opts = {
      token: options.token,
      storageKey: options.storageKey ?? "goldwire.session",
      minReconnectDelay: options.minReconnectDelay ?? 500,
      maxReconnectDelay: options.maxReconnectDelay ?? 20000,
      timeout: options.timeout ?? 10000,
      refreshAhead: options.refreshAhead ?? 30000,
      pingInterval: options.pingInterval,
    };
    const WS = options.websocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new Error("no WebSocket: pass options.websocket (e.g. the `ws` package in Node)");
    this.WS = WS;
    this.storage = options.storage ?? defaultStorage();
    if (typeof options.token === "string") this.token = options.token;
    this.sync = new SyncApi(options.httpUrl ?? httpBase(url), () => this.currentToken());
    this.host = {
      isConnected: () => this.state === "connected",
      command: (op, fields) => this.command(op, fields),
      whenConnected: () => this.whenConnected(),
    };
  }

  get sessionId(): string | null {
    return this.storage.get(this.opts.storageKey);
  }

  /** Open the connection; resolves with the connect reply's data, rejects on a terminal close. */
  connect(): Promise<ConnectReply> {
    if (this.state === "connected" && this.info) return Promise.resolve(this.info);
    const p = new Promise<ConnectReply>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.wantOpen) {
      this.wantOpen = true;
      this.attempts = 0;
      void this.open();
    }
    return p;
  }

  /** Close for good: no reconnect after this. */
  close(): void {
    this.wantOpen = false;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onerror = ws.onopen = null;
      try {
        ws.close(1000, "client closed");
      } catch {
        /* already closed */
      }
    }
    const wasUp = this.state !== "disconnected";
    this.lost(new GoldwireError("disconnected", "client closed"));
    this.rejectConnect(new GoldwireError("disconnected", "client closed"));
    if (wasUp) this.emit("disconnected", { code: 1000, reason: "client closed", reconnect: false });
  }

  /** The handle of a room (one per name). */
  room(name: string): Room {
    let room = this.rooms.get(name);
    if (!room) {
      room = new Room(this.host, name);
      this.rooms.set(name, room);
    }
    return room;
  }

  /** Set the user's presence status (and small meta) on this connection. */
  setStatus(status: Status, meta?: Json): Promise<StatusReply> {
    return this.command<StatusReply>("status", meta ? { status, meta } : { status });
  }

  /** Send a direct message to every connection of a user. */
  send(user: string, data: Json): Promise<SendReply> {
    return this.command<SendReply>("send", { user, data });
  }

  /** Write preferences based on `version`; a stale version rejects with code `conflict` (data has the current ones). */
  setPreferences(values: Json, version: number): Promise<PrefsReply> {
    return this.command<PrefsReply>("prefs", { values, version });
  }

  /** Keep a small UI state in the session, restored by the next connect (`info.session.state`). */
  saveSession(state: Json): Promise<{ session_id: string }> {
    return this.command("session", { state });
  }

  ping(): Promise<{ pong: true }> {
    return this.command("ping", {});
  }

  /** Send any command and await its reply's data. */
  command<T = Json>(op: string, fields: Json = {}): Promise<T> {
    const ws = this.ws;
    if (!ws || ws.readyState !== OPEN || (this.state !== "connected" && op !== "connect")) {
      return Promise.reject(new GoldwireError("disconnected", `not connected (${op})`));
    }
    const ref = this.nextRef++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(ref);
        reject(new GoldwireError("timeout", `${op} got no reply in ${this.opts.timeout} ms`));
      }, this.opts.timeout);
      this.pending.set(ref, { resolve: resolve as (d: unknown) => void, reject, timer });
      ws.send(JSON.stringify({ op, ref, ...fields }));
    });
  }

  // --- the connection's life ------------------------------------------------------------
  private async open(): Promise<void> {
    this.reconnectTimer = null;
    if (!this.wantOpen) return;
    this.setState("connecting");
    let token: string;
    try {
      token = await this.currentToken();
    } catch (err) {
      this.emit("error", err instanceof Error ? err : new Error(String(err)));
      this.scheduleReconnect(1006, "token source failed");
      return;
    }
    if (!this.wantOpen) return;
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.url);
    } catch (err) {
      this.emit("error", err instanceof Error ? err : new Error(String(err)));
      this.scheduleReconnect(1006, "could not open the socket");
      return;
    }
    this.ws = ws;
    ws.onopen = () => void this.handshake(ws, token);
    ws.onmessage = (ev) => {
      if (this.ws === ws) this.onFrame(ev.data);
    };
    ws.onerror = () => {
      /* a close event follows */
    };
    ws.onclose = (ev) => {
      if (this.ws === ws) this.onClose(ev.code, ev.reason);
    };
  }

  private async handshake(ws: WebSocketLike, token: string): Promise<void> {
    const fields: Json = { token };
    const sid = this.storage.get(this.opts.storageKey);
    if (sid) fields.session_id = sid;
    let data: ConnectReply;
    try {
      data = await this.command<ConnectReply>("connect", fields);
    } catch (err) {
      // An auth failure is followed by a 4001 close, handled there; a timeout closes here.
      if ((err as GoldwireError).code === "timeout" && this.ws === ws) {
        this.ownClose = "with_backoff";
        ws.close(4000, "connect timeout");
      }
      return;
    }
    if (this.ws !== ws) return;
    this.info = data;
    this.storage.set(this.opts.storageKey, data.session_id);
    const reconnected = this.everConnected;
    this.everConnected = true;
    this.attempts = 0;
    this.authFailures = 0;
    this.setState("connected");
    this.scheduleRefresh(data.expires_at);
    this.schedulePing();
    for (const room of this.rooms.values()) room._connected();
    for (const fn of this.readyWaiters.splice(0)) fn();
    this.emit("connected", { data, reconnected });
    for (const w of this.connectWaiters.splice(0)) w.resolve(data);
  }

  private onFrame(raw: unknown): void {
    this.schedulePing();
    let msg: Message;
    try {
      msg = JSON.parse(typeof raw === "string" ? raw : String(raw)) as Message;
    } catch {
      return;
    }
    if (msg.ref !== undefined && msg.ref !== null) {
      const p = this.pending.get(msg.ref as number);
      if (p) {
        this.pending.delete(msg.ref as number);
        clearTimeout(p.timer);
        if (msg.type === "error") {
          const d = msg.data as ErrorData;
          p.reject(new GoldwireError(d.code, d.message, d));
        } else p.resolve(msg.data);
        return;
      }
    }
    if (msg.room !== undefined) {
      this.rooms.get(msg.room)?._onFrame(msg);
      return;
    }
    switch (msg.type) {
      case "notification":
        this.emit("notification", msg);
        break;
      case "system_message":
        if (msg.data?.kind === "preferences") {
          this.emit("preferences", { values: msg.data.values as Json, version: msg.data.version as number });
        }
        break;
      case "user_message":
        this.emit("message", msg);
        break;
      case "error": {
        const d = msg.data as ErrorData;
        this.emit("error", new GoldwireError(d.code, d.message, d));
        break;
      }
    }
  }

  private onClose(code: number, reason: string): void {
    this.ws = null;
    this.lost(new GoldwireError("disconnected", `connection closed (${code})`));
    if (!this.wantOpen) return;
    this.scheduleReconnect(code, reason);
  }

  /** Decide, from the close code, whether and when to try again. */
  private scheduleReconnect(code: number, reason: string): void {
    const info = closeInfo(code);
    let how = this.ownClose ?? info.reconnect;
    this.ownClose = null;
    if (how === "with_new_token") {
      this.token = null;
      this.authFailures++;
      // A fixed string cannot get better; a token function that fails twice in a row is not
      // fixed by waiting either: both are terminal.
      if (typeof this.opts.token === "string" || this.authFailures >= 2) how = "no";
    }
    if (code === 4010) this.storage.remove(this.opts.storageKey);
    if (how === "no") {
      this.wantOpen = false;
      this.clearTimers();
      this.setState("disconnected");
      this.emit("disconnected", { code, reason, reconnect: false });
      this.rejectConnect(new GoldwireError("closed", `closed with ${code}: ${reason || info.meaning}`));
      return;
    }
    const delay =
      how === "at_once" && this.attempts === 0
        ? 0
        : fullJitter(this.attempts, {
            minDelay: this.opts.minReconnectDelay,
            maxDelay: this.opts.maxReconnectDelay,
          });
    this.attempts++;
    this.setState("connecting");
    this.emit("disconnected", { code, reason, reconnect: true, delay });
    this.reconnectTimer = setTimeout(() => void this.open(), delay);
  }

  /** The connection is gone: fail its commands, tell the rooms. */
  private lost(err: GoldwireError): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.refreshTimer = this.pingTimer = null;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    for (const room of this.rooms.values()) room._disconnected();
    if (!this.wantOpen) this.setState("disconnected");
  }

  private rejectConnect(err: Error): void {
    for (const w of this.connectWaiters.splice(0)) w.reject(err);
  }

  private whenConnected(): Promise<void> {
    if (this.state === "connected") return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  private async currentToken(): Promise<string> {
    if (this.token !== null) return this.token;
    const src = this.opts.token;
    this.token = typeof src === "string" ? src : await src();
    return this.token;
  }

  // --- token refresh ---------------------------------------------------------------------------
  private scheduleRefresh(expiresAt: number | undefined): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (typeof expiresAt !== "number" || typeof this.opts.token === "string") return;
    const left = expiresAt - Date.now();
    const delay = Math.max(0, Math.min(left - this.opts.refreshAhead, left / 2));
    this.refreshTimer = setTimeout(() => void this.refresh(), delay);
  }

  /** Get a new token and hand it to the server; if it has no `refresh` op, reconnect with it. */
  private async refresh(): Promise<void> {
    this.refreshTimer = null;
    const src = this.opts.token;
    if (typeof src === "string" || this.state !== "connected") return;
    let token: string;
    try {
      token = await src();
    } catch (err) {
      this.emit("error", err instanceof Error ? err : new Error(String(err)));
      this.refreshTimer = setTimeout(() => void this.refresh(), 5000);
      return;
    }
    this.token = token;
    try {
      const reply = await this.command<RefreshReply>("refresh", { token });
      this.scheduleRefresh(reply.expires_at);
    } catch (err) {
      const code = (err as GoldwireError).code;
      if (code === "bad_request" && this.ws) {
        // A gateway without the `refresh` op: reconnect at once with the fresh token;
        // rooms rejoin with `since`, so nothing is lost.
        this.ownClose = "at_once";
        this.attempts = 0;
        this.ws.close(4000, "reconnect with a fresh token");
      }
      // forbidden: the server closes with 4001, handled as a close.
    }
  }

  // --- liveness -----------------------------------------------------------------------------------
  private schedulePing(): void {
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.pingTimer = null;
    const every = this.opts.pingInterval ?? (this.info?.heartbeat ?? 30) * 1000;
    if (this.state !== "connected" || !(every > 0)) return;
    this.pingTimer = setTimeout(() => {
      const ws = this.ws;
      this.ping().catch((err: GoldwireError) => {
        // No answer in `timeout`: the socket is dead even if the OS has not noticed.
        if (err.code === "timeout" && ws && this.ws === ws) {
          this.ws = null;
          ws.onclose = ws.onmessage = null;
          try {
            ws.close(4000, "no pong");
          } catch {
            /* ignore */
          }
          this.onClose(1006, "no pong");
        }
      });
    }, every);
  }

  private clearTimers(): void {
    for (const t of [this.reconnectTimer, this.refreshTimer, this.pingTimer]) if (t) clearTimeout(t);
    this.reconnectTimer = this.refreshTimer = this.pingTimer = null;
  }

  private setState(newState: ConnectionState): void {
    const oldState = this.state;
    if (oldState === newState) return;
    this.state = newState;
    this.emit("state", { oldState, newState });
  }
}
