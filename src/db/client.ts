import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import * as schema from "./schema";

export type Db = DrizzleD1Database<typeof schema> & { $client: D1Database };

export function getDb(d1: D1Database): Db {
  return drizzle(d1, { schema });
}

/** Rows changed by a write inside a batch (D1 reports it in `meta.changes`). */
export function changedRows(result: unknown): number {
  return (result as { meta?: { changes?: number } })?.meta?.changes ?? 0;
}
