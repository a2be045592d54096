/** Where the SDK keeps the session id, so a page reload resumes the session. */
export interface SessionStorage {
  get(key: string): string | null;
  set(key: string, value: string): void;
  remove(key: string): void;
}

/** In memory: for Node, tests, or pages that opt out of persistence. */
export function memoryStorage(): SessionStorage {
  const map = new Map<string, string>();
  return {
    get: (k) => map.get(k) ?? null,
    set: (k, v) => void map.set(k, v),
    remove: (k) => void map.delete(k),
  };
}

/** `localStorage` when the environment has a usable one, else memory. */
export function defaultStorage(): SessionStorage {
  try {
    const ls = (globalThis as { localStorage?: Storage }).localStorage;
    if (ls) {
      const probe = "__goldwire_probe__";
      ls.setItem(probe, "1");
      ls.removeItem(probe);
      return {
        get: (k) => ls.getItem(k),
        set: (k, v) => ls.setItem(k, v),
        remove: (k) => ls.removeItem(k),
      };
    }
  } catch {
    // Private mode, disabled storage, sandboxed iframe: fall through.
  }
  return memoryStorage();
}
