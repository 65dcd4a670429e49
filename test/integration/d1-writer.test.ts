/**
 * Group commit (objects/d1-writer.ts): batches that arrive together go to D1
 * as one round trip, each caller gets its own statements' results, and a
 * batch that fails fails alone — the others are applied, once.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { d1RoundTrips } from "../../src/db/client";
import type { WriterAnswer } from "../../src/objects/d1-writer";

const writer = () => env.D1_WRITER.getByName("d1");
/** A batch through the writer, its answer as the object returns it (RPC's types make D1Result's rows `never`). */
const send = (queries: { sql: string; params: unknown[] }[], lingerMs?: number) =>
  writer().batch(queries, lingerMs) as unknown as Promise<WriterAnswer>;

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
    const answers = await Promise.all(ids.map((id) => send(eventBatch(id))));
    const results = answers.map((a) => a.results);
    const roundTrips = d1RoundTrips.count - before;
    expect(roundTrips).toBeGreaterThan(0);
    expect(roundTrips).toBeLessThan(30);
    results.forEach((r, i) => {
      expect(r).toHaveLength(2);
      expect(r[0]!.meta.changes).toBe(1);
      expect(r[1]!.results).toEqual([{ entity_id: ids[i] }]);
    });
    expect(await rowsOf(prefix)).toEqual(ids);
    // Sent together, the first to arrive found none in flight, and later ones found some: the writer was under load.
    expect(answers.some((a) => !a.othersInFlight)).toBe(true);
    expect(answers.some((a) => a.othersInFlight)).toBe(true);
  });

  it("says a batch had others in flight only while another batch someone waits on was (a lingering one does not count)", async () => {
    const prefix = `load-${crypto.randomUUID()}-`;
    expect((await send(eventBatch(`${prefix}a`))).othersInFlight).toBe(false);
    const lingering = send(eventBatch(`${prefix}b`), 15);
    await new Promise((r) => setTimeout(r, 2));
    const withLingering = await send(eventBatch(`${prefix}c`));
    expect(withLingering.othersInFlight).toBe(false);
    expect((await lingering).othersInFlight).toBe(false);
  });

  it("a lingering batch alone goes within its linger; one that gets company goes with it in one round trip, first", async () => {
    const prefix = `linger-${crypto.randomUUID()}-`;
    const t0 = Date.now();
    const alone = (await send(eventBatch(`${prefix}a`), 15)).results;
    expect(alone[1]!.results).toEqual([{ entity_id: `${prefix}a` }]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(14); // it waited for company that never came
    const before = d1RoundTrips.count;
    const lingering = send(eventBatch(`${prefix}b`), 15_000); // capped: never waits 15 s
    await new Promise((r) => setTimeout(r, 2));
    // The second batch reads what the lingering one wrote: they went together, the lingering one first.
    const company = send([
      { sql: "SELECT count(*) AS n FROM events WHERE entity_type = 'test' AND entity_id = ?", params: [`${prefix}b`] },
    ]);
    const [first, second] = (await Promise.all([lingering, company])).map((a) => a.results);
    expect(first![0]!.meta.changes).toBe(1);
    expect(second![0]!.results).toEqual([{ n: 1 }]);
    expect(d1RoundTrips.count - before).toBe(1);
  });

  it("a batch whose statement fails is refused alone; the batches that went with it are applied once", async () => {
    const prefix = `gcfail-${crypto.randomUUID()}-`;
    const good = Array.from({ length: 10 }, (_, i) => `${prefix}${i}`);
    const bad = [...eventBatch(`${prefix}bad`), { sql: "INSERT INTO no_such_table VALUES (1)", params: [] }];
    const outcomes = await Promise.allSettled([
      ...good.slice(0, 5).map((id) => send(eventBatch(id))),
      send(bad),
      ...good.slice(5).map((id) => send(eventBatch(id))),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual([...Array(5).fill("fulfilled"), "rejected", ...Array(5).fill("fulfilled")]);
    expect(String((outcomes[5] as PromiseRejectedResult).reason)).toMatch(/no such table/);
    // The failing batch left nothing (its own insert rolled back with it); the others are there, once each.
    expect(await rowsOf(prefix)).toEqual([...good].sort());
  });
});
