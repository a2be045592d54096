/**
 * One handle per room name: joins, publishes, and delivers each room message once, in
 * offset order, across reconnects (rejoin with `since`, duplicates dropped by offset).
 */
import { Emitter } from "./events.js";
import { compareOffsets } from "./offsets.js";
import { PresenceList } from "./presence.js";
import type {
  JoinResult,
  Json,
  LeaveReply,
  Message,
  PresenceDiff,
  PresenceMember,
  PresenceState,
  PublishReply,
  RoomMessage,
  RoomMessageType,
  RoomUpdate,
} from "./types.js";

export type RoomState = "unjoined" | "joining" | "joined";

export interface ResyncInfo {
  /** Why the room's history could not be replayed. */
  reason: "not_recovered" | string;
  /** The room's latest offset now: reload the room over HTTP up to here. */
  offset: string | null;
}

export interface RoomEvents {
  message: RoomMessage;
  presence: PresenceMember[];
  /** Messages may have been missed: reload the room's state over HTTP. */
  resync: ResyncInfo;
  /** Every `room_update` frame's data (counts, closed, kicked, resync); after `closed` or
   * `kicked` the room is `unjoined` and is not rejoined on reconnect. */
  update: RoomUpdate;
  /** After every successful join or rejoin. */
  joined: JoinResult;
  state: { oldState: RoomState; newState: RoomState };
  error: Error;
}

/** What a room needs from its client (kept narrow so the two files stay separate). */
export interface RoomHost {
  isConnected(): boolean;
  command<T>(op: string, fields: Json): Promise<T>;
  whenConnected(): Promise<void>;
}

export class Room extends Emitter<RoomEvents> {
  readonly name: string;
  state: RoomState = "unjoined";
  /** The last offset delivered to the page (or the room's offset at join time). */
  lastOffset: string | null = null;
  /** Whether the page wants to be in the room (join called, leave not yet). */
  private wanted = false;
  private readonly presenceList = new PresenceList();
  private joining: Promise<JoinResult> | null = null;

  constructor(
    private readonly host: RoomHost,
    name: string,
  ) {
    super();
    this.name = name;
  }

  /** The current member list. */
  get members(): PresenceMember[] {
    return this.presenceList.list();
  }

  /** Join (or wait for the connection, then join); resolves with the join reply's data. */
  join(): Promise<JoinResult> {
    this.wanted = true;
    if (this.state === "joined" && !this.joining) {
      return Promise.resolve({ room: this.name, offset: this.lastOffset ?? "0-0" });
    }
    if (!this.joining) this.joining = this.doJoin();
    return this.joining;
  }

  /** Publish a room message; resolves with `{offset}` (and `room`). */
  publish(type: RoomMessageType, data: Json): Promise<PublishReply> {
    return this.host.command<PublishReply>("publish", { room: this.name, type, data });
  }

  async leave(): Promise<LeaveReply> {
    this.wanted = false;
    this.lastOffset = null;
    this.presenceList.clear();
    const wasJoined = this.state !== "unjoined";
    this.setState("unjoined");
    if (!wasJoined || !this.host.isConnected()) return { room: this.name };
    return this.host.command<LeaveReply>("leave", { room: this.name });
  }

  // --- called by the client ---------------------------------------------------------
  /** @internal The connection dropped: the server forgot the membership. */
  _disconnected(): void {
    if (this.state !== "unjoined") this.setState(this.wanted ? "joining" : "unjoined");
  }

  /** @internal A new connection is ready: rejoin if the page wants the room. */
  _connected(): void {
    if (this.wanted && !this.joining) {
      this.joining = this.doJoin();
      this.joining.catch((err: Error) => this.emit("error", err));
    }
  }

  /** @internal */
  _onFrame(msg: Message): void {
    if (!this.wanted) return;
    if (msg.type === "presence_update") {
      const data = msg.data as unknown as PresenceState | PresenceDiff;
      const list =
        data.kind === "state" ? this.presenceList.syncState(data) : this.presenceList.syncDiff(data);
      this.emit("presence", list);
      return;
    }
    if (msg.type === "room_update") {
      const data = msg.data as RoomUpdate;
      this.emit("update", data);
      if (data.kind === "resync") {
        // The gateway lost the live feed and its history: offsets restart with the new one.
        this.lastOffset = null;
        this.emit("resync", { reason: String(data.reason ?? "resync"), offset: null });
      } else if (data.kind === "kicked" || data.kind === "closed") {
        // An operator took this connection out of the room: it is not rejoined on the
        // next connection (the page may call join() again, and the token decides).
        this.wanted = false;
        this.lastOffset = null;
        this.presenceList.clear();
        this.setState("unjoined");
      }
      return;
    }
    if (msg.offset === undefined) return;
    if (this.lastOffset !== null && compareOffsets(msg.offset, this.lastOffset) <= 0) return; // duplicate
    this.lastOffset = msg.offset;
    this.emit("message", msg as RoomMessage);
  }

  private async doJoin(): Promise<JoinResult> {
    this.setState("joining");
    try {
      for (;;) {
        await this.host.whenConnected();
        if (!this.wanted) throw new Error(`left room ${this.name} before the join finished`);
        const since = this.lastOffset;
        const fields: Json = { room: this.name };
        if (since !== null) fields.since = since;
        let result: JoinResult;
        try {
          result = await this.host.command<JoinResult>("join", fields);
        } catch (err) {
          // The connection dropped mid-join: try again on the next one.
          if ((err as { code?: string }).code === "disconnected") continue;
          throw err;
        }
        if (since !== null && result.recovered === false) {
          this.lastOffset = result.offset;
          this.emit("resync", { reason: "not_recovered", offset: result.offset });
        } else if (since === null) {
          this.lastOffset = result.offset;
        }
        this.setState("joined");
        this.emit("joined", result);
        return result;
      }
    } catch (err) {
      if (!this.wanted || this.state === "joining") this.setState("unjoined");
      this.wanted = false;
      throw err;
    } finally {
      this.joining = null;
    }
  }

  private setState(newState: RoomState): void {
    const oldState = this.state;
    if (oldState === newState) return;
    this.state = newState;
    this.emit("state", { oldState, newState });
  }
}
