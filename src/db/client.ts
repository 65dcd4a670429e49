import { type SQL, sql } from "drizzle-orm";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import * as schema from "./schema";

export type Db = DrizzleD1Database<typeof schema> & { $client: D1Database };

export function getDb(d1: D1Database): Db {
  return drizzle(d1, { schema });
}

/** Rows changed by a write inside a batch (D1 reports it in `meta.changes`). */
export function changedRows(result: unknown): number {
  return (result as { meta?: { changes?: number } })?.meta?.changes ?? 0;
}

/** One round trip that proves the database answers (`/health`). */
export async function pingDatabase(db: Db): Promise<void> {
  await db.run(sql`SELECT 1`);
}

/**
 * `column IN (…)` for a list of any length with one bound parameter: D1 allows
 * 100 parameters per statement, so lists travel as JSON through json_each.
 */
export const inJsonList = (column: SQLiteColumn, values: readonly (string | number)[]): SQL =>
  sql`${column} IN (SELECT value FROM json_each(${JSON.stringify(values)}))`;
