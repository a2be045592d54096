/**
 * A room's member list, kept from one `state` and then `diff`s (Phoenix's
 * Presence.syncState / syncDiff model): the page gets the whole list, never raw events.
 */
import type { PresenceDiff, PresenceMember, PresenceState } from "./types.js";

export class PresenceList {
  private members = new Map<string, PresenceMember>();

  /** Replace everything with a `state` payload. */
  syncState(state: PresenceState): PresenceMember[] {
    this.members = new Map(state.members.map((m) => [m.user.id, m]));
    return this.list();
  }

  /** Apply a `diff`: joins and updates replace the member, leaves remove it. */
  syncDiff(diff: PresenceDiff): PresenceMember[] {
    for (const m of diff.joins ?? []) this.members.set(m.user.id, m);
    for (const m of diff.updates ?? []) this.members.set(m.user.id, m);
    for (const m of diff.leaves ?? []) this.members.delete(m.user.id);
    return this.list();
  }

  clear(): void {
    this.members.clear();
  }

  list(): PresenceMember[] {
    return [...this.members.values()];
  }

  get(userId: string): PresenceMember | undefined {
    return this.members.get(userId);
  }
}
