/**
 * The gateway's `/v2/sync` HTTP API for the signed-in user: what a page loads at start and
 * reloads after a `resync` (history, preferences, the notification inbox, sessions). Calls
 * carry the client's current token, so a refreshed token is used without the page's help.
 */
import type { Json, Message, Preferences, PresenceMember, UserRef } from "./types.js";

export interface Notification {
  id: string;
  ts: number;
  read: boolean;
  data: Json;
}
export interface NotificationsPage {
  items: Notification[];
  unread: number;
  /** Pass as `before` for the next (older) page; null at the end. */
  next: string | null;
}
export interface History {
  room: string;
  /** The room's latest offset. */
  offset: string;
  messages: Message[];
  /** With `since`: whether history still reached back that far. */
  recovered?: boolean;
  /** With `since`: false when more than `limit` messages followed it. */
  complete?: boolean;
}
export interface Bootstrap {
  user: UserRef;
  tenant: string;
  session: Json | null;
  preferences: Preferences;
  unread: number;
  presence: Record<string, { members: PresenceMember[]; [key: string]: unknown }>;
}
export interface SessionSummary {
  id: string;
  device: string;
  created: number;
  last_seen: number;
  [key: string]: unknown;
}

/** A failed HTTP call: `status` is the HTTP status, `code` the protocol's error code. */
export class SyncError extends Error {
  readonly status: number;
  readonly code: string;
  readonly body: unknown;
  constructor(status: number, code: string, message: string, body: unknown) {
    super(message);
    this.name = "SyncError";
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** `ws://host/ws` → `http://host`, `wss://` → `https://`. */
export function httpBase(wsUrl: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  url.pathname = url.pathname.replace(/\/ws\/?$/, "");
  url.search = url.hash = "";
  return url.toString().replace(/\/$/, "");
}

export class SyncApi {
  constructor(
    private readonly base: string,
    private readonly token: () => Promise<string>,
  ) {}

  /** User, session, preferences, unread count and the presence of `rooms`, in one call. */
  bootstrap(rooms: string[] = []): Promise<Bootstrap> {
    return this.call("GET", "/bootstrap", rooms.length ? { rooms: rooms.join(",") } : {});
  }

  /** A room's messages after `since` (or the latest `limit`), oldest first: a resync's reload. */
  history(room: string, opts: { since?: string; limit?: number } = {}): Promise<History> {
    const query: Record<string, string> = {};
    if (opts.since) query.since = opts.since;
    if (opts.limit) query.limit = String(opts.limit);
    return this.call("GET", `/rooms/${encodeURIComponent(room)}/history`, query);
  }

  preferences(): Promise<Preferences> {
    return this.call("GET", "/preferences");
  }

  /** Newest first; `before` is the previous page's `next`. */
  notifications(opts: { limit?: number; before?: string } = {}): Promise<NotificationsPage> {
    const query: Record<string, string> = {};
    if (opts.limit) query.limit = String(opts.limit);
    if (opts.before) query.before = opts.before;
    return this.call("GET", "/notifications", query);
  }

  /** Mark notifications read, by id or everything up to an id; resolves with the unread count. */
  ackNotifications(ack: { ids?: string[]; upto?: string }): Promise<{ unread: number }> {
    return this.call("POST", "/notifications/ack", {}, ack);
  }

  sessions(): Promise<{ sessions: SessionSummary[]; [key: string]: unknown }> {
    return this.call("GET", "/sessions");
  }

  /** Sign a session out: its sockets close with 4010 on every gateway. */
  revokeSession(id: string): Promise<Json> {
    return this.call("DELETE", `/sessions/${encodeURIComponent(id)}`);
  }

  private async call<T>(method: string, path: string, query: Record<string, string> = {},
    body?: unknown): Promise<T> {
    const qs = new URLSearchParams(query).toString();
    const headers: Record<string, string> = { authorization: `Bearer ${await this.token()}` };
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await fetch(`${this.base}/v2/sync${path}${qs ? "?" + qs : ""}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let data: unknown = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = text;
    }
    if (!res.ok) {
      // `{"detail": {"code", "message"}}`; a 409 on preferences is the current values instead.
      const detail = (data as { detail?: unknown } | null)?.detail;
      const known = typeof detail === "object" && detail !== null ? (detail as Json) : {};
      const code = typeof known.code === "string" ? known.code : res.status === 409 ? "conflict" : String(res.status);
      const message = typeof known.message === "string" ? known.message : `${method} ${path} answered ${res.status}`;
      throw new SyncError(res.status, code, message, data);
    }
    return data as T;
  }
}
