/**
 * Identifiers whose order follows time: UUID version 7 (RFC 9562 §5.7) — a millisecond timestamp,
 * then random bits — so rows and index entries written together sit together in SQLite's B-trees.
 * A random UUID (v4) sends each new task row, each event's index entry and each write id to a random
 * page: a D1 batch that settles a few tasks then modifies (and journals, and writes back) a page per
 * entry, where time-ordered keys share the few rightmost pages. Still a UUID to every client.
 */

/** Each byte's two hex digits (an id is made per task and per write: no per-byte padStart). */
const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));

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
  const h = (from: number, to: number) => {
    let out = "";
    for (let i = from; i < to; i++) out += HEX[bytes[i]!];
    return out;
  };
  return `${h(0, 4)}-${h(4, 6)}-${h(6, 8)}-${h(8, 10)}-${h(10, 16)}`;
}
