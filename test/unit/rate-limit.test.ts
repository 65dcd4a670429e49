import { describe, expect, it } from "vitest";
import { giveBack, perMinute, refill, take } from "../../src/core/rate-limit";

describe("token buckets", () => {
  const limit = { ratePerSecond: 2, burst: 4 };
  it("a new bucket is full; a burst passes, the next is refused with the wait until a token refills", () => {
    let state = undefined as ReturnType<typeof refill> | undefined;
    for (let i = 0; i < 4; i++) {
      const r = take(state, limit, 1, 1000);
      expect(r.allowed).toBe(true);
      state = r.state;
    }
    const refused = take(state, limit, 1, 1000);
    expect(refused).toMatchObject({ allowed: false, retryAfterMs: 500 });
    // Half a second later one token is back.
    expect(take(refused.state, limit, 1, 1500).allowed).toBe(true);
  });

  it("refills at the rate, never above the burst", () => {
    expect(refill({ tokens: 0, atMs: 0 }, limit, 1000).tokens).toBe(2);
    expect(refill({ tokens: 0, atMs: 0 }, limit, 60_000).tokens).toBe(4);
    expect(refill({ tokens: 1, atMs: 5000 }, limit, 4000).tokens).toBe(1); // a clock step backwards adds nothing
  });

  it("a cost of several tokens waits for all of them; giving back undoes a take", () => {
    const r = take({ tokens: 1, atMs: 0 }, limit, 3, 0);
    expect(r).toMatchObject({ allowed: false, retryAfterMs: 1000 });
    const taken = take({ tokens: 4, atMs: 0 }, limit, 3, 0);
    expect(taken.allowed && taken.state.tokens).toBe(1);
    expect(giveBack(taken.state, limit, 3, 0).tokens).toBe(4);
    expect(giveBack({ tokens: 4, atMs: 0 }, limit, 3, 0).tokens).toBe(4);
  });

  it("per minute: n tokens refilling at n/60 a second", () => {
    expect(perMinute(120)).toEqual({ ratePerSecond: 2, burst: 120 });
    const r = take({ tokens: 0, atMs: 0 }, perMinute(6), 1, 0);
    expect(r).toMatchObject({ allowed: false, retryAfterMs: 10_000 });
  });
});
