/** Room offsets are Redis Stream ids "<ms>-<seq>": compare as integer pairs, never as strings. */
export const ZERO_OFFSET = "0-0";

export function parseOffset(offset: string): [bigint, bigint] {
  const i = offset.indexOf("-");
  if (i < 0) throw new Error(`not an offset: ${offset}`);
  return [BigInt(offset.slice(0, i)), BigInt(offset.slice(i + 1))];
}

/** -1, 0 or 1, like a comparator. */
export function compareOffsets(a: string, b: string): number {
  const [am, as] = parseOffset(a);
  const [bm, bs] = parseOffset(b);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return 0;
}
