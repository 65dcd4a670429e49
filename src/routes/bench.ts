/**
 * `GET /api/v1/_bench/d1`: the D1 round trips this isolate has made, and its bot objects' storage
 * writes (objects/counted-storage.ts), for `npm run bench`.
 * Exists only when the Worker runs with BENCH_MODE=1 (404 otherwise); admin only.
 * Not part of the public API (left out of the OpenAPI document on purpose).
 */
import { Hono } from "hono";
import { requireAdmin } from "../auth";
import { d1RoundTrips } from "../db/client";
import { AppError } from "../errors";
import type { AppEnv } from "../http";
import { storageWrites } from "../objects/counted-storage";
import { lastSweep } from "../services/sweeper";

export const benchRouter = new Hono<AppEnv>();

benchRouter.get("/d1", (c) => {
  if (c.env.BENCH_MODE !== "1") throw new AppError("not_found", "no such route");
  requireAdmin(c);
  return c.json({
    round_trips: d1RoundTrips.count,
    statements: d1RoundTrips.statements,
    rows_read: d1RoundTrips.rowsRead,
    d1_waited_ms: d1RoundTrips.waitedMs,
    bot_storage_writes: storageWrites.count,
    last_sweep: lastSweep.report,
    last_sweep_finished_at_ms: lastSweep.finishedAtMs,
  });
});
