/** Full-jitter exponential backoff (AWS architecture blog): uniform in [0, min(max, min*2^n)]. */
export interface BackoffOptions {
  /** Base delay in ms (default 500). */
  minDelay: number;
  /** Cap in ms (default 20000). */
  maxDelay: number;
}

export function fullJitter(attempt: number, opts: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(opts.maxDelay, opts.minDelay * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}
