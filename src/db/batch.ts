/**
 * `db.batch()` for D1 that also takes raw `sql` statements (drizzle's own batch
 * cannot bind those). A D1 batch runs as one transaction: all or nothing,
 * and no other query interleaves — the basis of every guarded write here.
 */
import { is, SQL } from "drizzle-orm";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import { checkParameterCount, type Db } from "./client";

const dialect = new SQLiteSyncDialect();

export type Statement = SQL | { toSQL(): { sql: string; params: unknown[] } };

/**
 * Runs the statements as one D1 batch: through the group-commit writer when
 * the Db has one (objects/d1-writer.ts; the coordinator's own contexts do),
 * else straight to D1.
 */
export async function runBatch(db: Db, statements: Statement[]): Promise<D1Result[]> {
  const queries = statements.map((s) => (is(s, SQL) ? dialect.sqlToQuery(s) : s.toSQL()));
  if (db.$writer) {
    // The writer binds them itself: the parameter limit is checked here, as the counted binding does.
    for (const q of queries) checkParameterCount(q.params.length);
    return db.$writer.batch(queries);
  }
  const d1 = db.$client;
  return d1.batch(queries.map((q) => d1.prepare(q.sql).bind(...q.params)));
}
