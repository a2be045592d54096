/**
 * Wire types of protocol v1, matching libs/protocol/messages.py and commands.py (and the
 * AsyncAPI document generated from them, docs/asyncapi.json).
 */
import type { ErrorCode } from "./codes.js";

export type Ref = string | number;
export type MessageType =
  | "system_message"
  | "user_message"
  | "document_update"
  | "presence_update"
  | "room_update"
  | "notification"
  | "error";
export type RoomMessageType = "user_message" | "document_update";
export type Status = "online" | "away" | "busy";
export type Json = { [key: string]: unknown };

export interface UserRef {
  id: string;
  name?: string | null;
}

/** Any server → client frame. */
export interface Message<D = Json> {
  type: MessageType;
  room?: string;
  offset?: string;
  ts?: number;
  from?: UserRef;
  data: D;
  ref?: Ref;
}

/** A room message (`user_message`, `document_update`, backend publishes): has an offset. */
export interface RoomMessage<D = Json> extends Message<D> {
  room: string;
  offset: string;
}

// --- client → server commands ----------------------------------------------------
export interface RoomJoin {
  room: string;
  since?: string;
}
export type Command =
  | { op: "connect"; token?: string; session_id?: string; rooms?: RoomJoin[] }
  | { op: "join"; room: string; since?: string }
  | { op: "leave"; room: string }
  | { op: "publish"; room: string; type: RoomMessageType; data: Json }
  | { op: "send"; user: string; data: Json }
  | { op: "status"; status: Status; meta?: Json }
  | { op: "ping" }
  | { op: "session"; state: Json }
  | { op: "prefs"; values: Json; version: number }
  | { op: "refresh"; token: string };

// --- reply data ----------------------------------------------------------------------
export interface SessionInfo {
  id: string;
  resumed: boolean;
  rooms: { room: string; offset: string }[];
  state: Json;
}
export interface JoinResult {
  room: string;
  offset: string;
  recovered?: boolean;
  /** false when the room's options turn presence off: no presence list will come. */
  presence?: boolean;
}
export interface JoinFailure {
  room: string;
  error: { code: ErrorCode; message: string };
}
export interface ConnectReply {
  conn_id: string;
  session_id: string;
  session: SessionInfo;
  user: UserRef;
  node: string;
  heartbeat: number;
  rooms: (JoinResult | JoinFailure)[];
  /** Token expiry (ms since the epoch): the SDK refreshes the token before it. */
  expires_at: number;
}
export interface LeaveReply {
  room: string;
}
export interface PublishReply {
  room: string;
  offset: string;
}
export interface SendReply {
  delivered: number;
}
export interface StatusReply {
  status: Status;
}
export interface PrefsReply {
  version: number;
}
export interface RefreshReply {
  expires_at: number;
}
export interface ErrorData {
  code: ErrorCode;
  message: string;
  [key: string]: unknown;
}

// --- presence and room events ----------------------------------------------------------
export interface PresenceMember {
  user: UserRef;
  status: Status | string;
  connections: number;
  meta: Json;
}
/** The whole room at `version`; later diffs carry higher versions. */
export interface PresenceState {
  kind: "state";
  version: number;
  members: PresenceMember[];
}
/** What changed to reach `version`; a diff not above the state's version is old. */
export interface PresenceDiff {
  kind: "diff";
  version: number;
  joins?: PresenceMember[];
  leaves?: PresenceMember[];
  updates?: PresenceMember[];
}
/** Room-level events: `resync`, `closed` and `kicked` (an operator's; `reason` is their
 * text when they gave one), `counts` (reserved). */
export interface RoomUpdate {
  kind: "resync" | "closed" | "kicked" | "counts";
  reason?: string;
  [key: string]: unknown;
}
/** `system_message` pushed on every preferences change. */
export interface Preferences {
  values: Json;
  version: number;
}
