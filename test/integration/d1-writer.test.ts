/**
 * Group commit (objects/d1-writer.ts): batches that arrive together go to D1
 * as one round trip, each caller gets its own statements' results, and a
 * batch that fails fails alone — the others are applied, once.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { d1RoundTrips } from "../../src/db/client";

const writer = () => env.D1_WRITER.getByName("d1");

/** One caller's batch: an event row of its own, read back in the same batch. */
const eventBatch = (entityId: string) => [
  {
    sql: "INSERT INTO events (entity_type, entity_id, type, data, created_at) VALUES ('test', ?, 'group_commit', '{}', ?)",
    params: [entityId, Date.now()],
  },
  { sql: "SELECT entity_id FROM events WHERE entity_type = 'test' AND entity_id = ?", params: [entityId] },
];

const rowsOf = async (prefix: string) =>
  (
    await env.DB.prepare("SELECT entity_id FROM events WHERE entity_type = 'test' AND entity_id LIKE ? ORDER BY entity_id")
      .bind(`${prefix}%`)
      .all()
  ).results.map((r: any) => r.entity_id);

describe("group commit in front of D1", () => {
  it("thirty batches sent at once take fewer round trips, and each gets its own results", async () => {
    const prefix = `gc-${crypto.randomUUID()}-`;
    const ids = Array.from({ length: 30 }, (_, i) => `${prefix}${String(i).padStart(2, "0")}`);
    const before = d1RoundTrips.count;
    const results = (await Promise.all(ids.map((id) => writer().batch(eventBatch(id))))) as unknown as D1Result[][];
    const roundTrips = d1RoundTrips.count - before;
    expect(roundTrips).toBeGreaterThan(0);
    expect(roundTrips).toBeLessThan(30);
    results.forEach((r, i) => {
      expect(r).toHaveLength(2);
      expect(r[0]!.meta.changes).toBe(1);
      expect(r[1]!.results).toEqual([{ entity_id: ids[i] }]);
    });
    expect(await rowsOf(prefix)).toEqual(ids);
  });

  it("a lingering batch alone goes within its linger; one that gets company goes with it in one round trip, first", async () => {
    const prefix = `linger-${crypto.randomUUID()}-`;
    const t0 = Date.now();
    const alone = (await writer().batch(eventBatch(`${prefix}a`), 15)) as unknown as D1Result[];
    expect(alone[1]!.results).toEqual([{ entity_id: `${prefix}a` }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(14); // it waited for company that never came
    const before = d1RoundTrips.count;
    const lingering = writer().batch(eventBatch(`${prefix}b`), 15_000); // capped: never waits 15 s
    await new Promise((r) => setTimeout(r, 2));
    // The second batch reads what the lingering one wrote: they went together, the lingering one first.
    const company = writer().batch([
      { sql: "SELECT count(*) AS n FROM events WHERE entity_type = 'test' AND entity_id = ?", params: [`${prefix}b`] },
    ]);
    const [first, second] = (await Promise.all([lingering, company])) as unknown as D1Result[][];
    expect(first![0]!.meta.changes).toBe(1);
    expect(second![0]!.results).toEqual([{ n: 1 }]);
    expect(d1RoundTrips.count - before).toBe(1);
  });

  it("a batch whose statement fails is refused alone; the batches that went with it are applied once", async () => {
    const prefix = `gcfail-${crypto.randomUUID()}-`;
    const good = Array.from({ length: 10 }, (_, i) => `${prefix}${i}`);
    const bad = [...eventBatch(`${prefix}bad`), { sql: "INSERT INTO no_such_table VALUES (1)", params: [] }];
    const outcomes = await Promise.allSettled([
      ...good.slice(0, 5).map((id) => writer().batch(eventBatch(id))),
      writer().batch(bad),
      ...good.slice(5).map((id) => writer().batch(eventBatch(id))),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual([...Array(5).fill("fulfilled"), "rejected", ...Array(5).fill("fulfilled")]);
    expect(String((outcomes[5] as PromiseRejectedResult).reason)).toMatch(/no such table/);
    // The failing batch left nothing (its own insert rolled back with it); the others are there, once each.
    expect(await rowsOf(prefix)).toEqual([...good].sort());
  });
});
