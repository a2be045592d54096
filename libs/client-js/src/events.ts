/** A tiny typed event emitter: one event map per object. */
export type Listener<T> = (payload: T) => void;

export class Emitter<M extends { [K in keyof M]: unknown }> {
  private listeners: { [K in keyof M]?: Set<Listener<M[K]>> } = {};

  /** Subscribe; returns a function that unsubscribes. */
  on<K extends keyof M>(event: K, fn: Listener<M[K]>): () => void {
    (this.listeners[event] ??= new Set()).add(fn);
    return () => this.off(event, fn);
  }

  once<K extends keyof M>(event: K, fn: Listener<M[K]>): () => void {
    const off = this.on(event, (p) => {
      off();
      fn(p);
    });
    return off;
  }

  off<K extends keyof M>(event: K, fn: Listener<M[K]>): void {
    this.listeners[event]?.delete(fn);
  }

  protected emit<K extends keyof M>(event: K, payload: M[K]): void {
    const set = this.listeners[event];
    if (!set) return;
    for (const fn of [...set]) {
      try {
        fn(payload);
      } catch (err) {
        // A page's listener must never break the SDK's own bookkeeping.
        setTimeout(() => {
          throw err;
        });
      }
    }
  }
}
