/**
 * Close codes and what a client does after each: a mirror of libs/protocol/codes.py's
 * CLOSE_TABLE (keep the two in step; tests/system/test_client_js.py checks they match).
 */
export type Reconnect = "no" | "at_once" | "with_backoff" | "with_new_token";

export interface CloseInfo {
  meaning: string;
  reconnect: Reconnect;
  /** Rejoin rooms with `since` after reconnecting. */
  recover: boolean;
}

export const CLOSE_TABLE: Readonly<Record<number, CloseInfo>> = {
  1000: { meaning: "normal", reconnect: "no", recover: false },
  1001: { meaning: "going away", reconnect: "with_backoff", recover: true },
  1011: { meaning: "internal error", reconnect: "with_backoff", recover: true },
  1009: { meaning: "frame too large", reconnect: "no", recover: false },
  4000: { meaning: "protocol violation (bad frame before or instead of connect)", reconnect: "no", recover: false },
  4001: { meaning: "unauthorized (bad, expired or missing token; auth timeout)", reconnect: "with_new_token", recover: true },
  4003: { meaning: "forbidden", reconnect: "no", recover: false },
  4008: { meaning: "rate limited (flood)", reconnect: "with_backoff", recover: true },
  4009: { meaning: "slow consumer (outbound queue full)", reconnect: "at_once", recover: true },
  4010: { meaning: "session revoked", reconnect: "no", recover: false },
  4011: { meaning: "disconnected by an operator", reconnect: "no", recover: false },
  4012: { meaning: "server draining", reconnect: "at_once", recover: true },
  4029: { meaning: "too many connections for this user", reconnect: "no", recover: false },
};

/**
 * A code missing from the table (1006 abnormal closure: the network or a killed
 * gateway; anything a proxy invents) reconnects with backoff and recovers.
 */
export function closeInfo(code: number): CloseInfo {
  return CLOSE_TABLE[code] ?? { meaning: "connection lost", reconnect: "with_backoff", recover: true };
}

/** Error codes (`data.code` of an `error` frame). */
export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "rate_limited"
  | "too_large"
  | "conflict"
  | "unavailable"
  | "internal";
