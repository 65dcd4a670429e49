/**
 * Identifiers whose order follows time: UUID version 7 (RFC 9562 §5.7) — a millisecond timestamp,
 * then random bits — so rows and index entries written together sit together in SQLite's B-trees.
 * A random UUID (v4) sends each new task row, each event's index entry and each write id to a random
 * page: a D1 batch that settles a few tasks then modifies (and journals, and writes back) a page per
 * entry, where time-ordered keys share the few rightmost pages. Still a UUID to every client.
 */

/** Within one millisecond, ids of this isolate still increase: the 12 bits after the timestamp count. */
let lastMs = -1;
let sequence = 0;

export function timeOrderedId(nowMs: number = Date.now()): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  if (nowMs > lastMs) {
    lastMs = nowMs;
    sequence = (bytes[6]! & 0x07) * 256 + bytes[7]!; // start low in the 12 bits, so a burst has room to count
  } else {
    sequence = Math.min(sequence + 1, 0xfff); // the clock did not move (or moved back): count on from the last id
  }
  const ms = Math.max(nowMs, lastMs);
  for (let i = 0; i < 6; i++) bytes[i] = Math.floor(ms / 2 ** (8 * (5 - i))) & 0xff;
  bytes[6] = 0x70 | (sequence >> 8);
  bytes[7] = sequence & 0xff;
  bytes[8] = 0x80 | (bytes[8]! & 0x3f);
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
