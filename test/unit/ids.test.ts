/**
 * Row ids are UUIDs of version 7 (crypto/ids.ts): every client still reads a UUID, and ids made
 * later sort later — across milliseconds by their time, within one by their count — so rows written
 * together sit together in D1's B-trees.
 */
import { describe, expect, it } from "vitest";
import { timeOrderedId } from "../../src/crypto/ids";

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe("timeOrderedId", () => {
  it("is an RFC 9562 UUID of version 7 whose first 48 bits are the millisecond given", () => {
    const nowMs = Date.UTC(2026, 11, 4, 21, 30);
    const id = timeOrderedId(nowMs);
    expect(id).toMatch(UUID_V7);
    expect(Number.parseInt(id.replace(/-/g, "").slice(0, 12), 16)).toBe(nowMs);
  });

  it("sorts in the order ids were made, within one millisecond and across them", () => {
    const base = Date.UTC(2026, 11, 4, 22);
    const made = [
      ...Array.from({ length: 1000 }, () => timeOrderedId(base)),
      ...Array.from({ length: 10 }, (_, i) => timeOrderedId(base + 1 + i)),
    ];
    expect(new Set(made).size).toBe(made.length);
    expect([...made].sort()).toEqual(made);
  });

  it("stays unique when the clock goes back or a millisecond outlasts its count", () => {
    const base = Date.UTC(2026, 11, 4, 23);
    const made = [timeOrderedId(base + 5), timeOrderedId(base), ...Array.from({ length: 5000 }, () => timeOrderedId(base))];
    expect(new Set(made).size).toBe(made.length);
    for (const id of made) expect(id).toMatch(UUID_V7);
    // An earlier clock does not make an earlier id: it counts on from the latest.
    expect(made[1]! > made[0]!).toBe(true);
  });
});
