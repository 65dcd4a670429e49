/**
 * `db.batch()` for D1 that also takes raw `sql` statements (drizzle's own batch
 * cannot bind those). A D1 batch runs as one transaction: all or nothing,
 * and no other query interleaves — the basis of every guarded write here.
 */
import { is, SQL } from "drizzle-orm";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import type { Db } from "./client";

const dialect = new SQLiteSyncDialect();

export type Statement = SQL | { toSQL(): { sql: string; params: unknown[] } };

export async function runBatch(db: Db, statements: Statement[]): Promise<D1Result[]> {
  const d1 = db.$client;
  return d1.batch(
    statements.map((s) => {
      const q = is(s, SQL) ? dialect.sqlToQuery(s) : s.toSQL();
      return d1.prepare(q.sql).bind(...q.params);
    }),
  );
}
