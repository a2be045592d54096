export { Goldwire, GoldwireError } from "./client.js";
export type {
  ClientEvents,
  ConnectedInfo,
  ConnectionState,
  DisconnectedInfo,
  Options,
  TokenSource,
  WebSocketConstructor,
  WebSocketLike,
} from "./client.js";
export { Room } from "./room.js";
export type { ResyncInfo, RoomEvents, RoomState } from "./room.js";
export { PresenceList } from "./presence.js";
export { SyncApi, SyncError, httpBase } from "./sync.js";
export type { Bootstrap, History, Notification, NotificationsPage, SessionSummary } from "./sync.js";
export { fullJitter } from "./backoff.js";
export type { BackoffOptions } from "./backoff.js";
export { CLOSE_TABLE, closeInfo } from "./codes.js";
export type { CloseInfo, ErrorCode, Reconnect } from "./codes.js";
export { memoryStorage, defaultStorage } from "./storage.js";
export type { SessionStorage } from "./storage.js";
export { compareOffsets, ZERO_OFFSET } from "./offsets.js";
export type * from "./types.js";
export const VERSION: string = __GOLDWIRE_VERSION__;
declare const __GOLDWIRE_VERSION__: string;
