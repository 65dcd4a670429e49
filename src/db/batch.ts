/**
 * `db.batch()` for D1 that also takes raw `sql` statements (drizzle's own batch
 * cannot bind those). A D1 batch runs as one transaction: all or nothing,
 * and no other query interleaves — the basis of every guarded write here.
 */
import { fillPlaceholders, getTableColumns, getTableName, is, SQL, type Table } from "drizzle-orm";
import { SQLiteSyncDialect } from "drizzle-orm/sqlite-core";
import { checkParameterCount, type Db, type StatementResult } from "./client";

const dialect = new SQLiteSyncDialect();

export type Statement = SQL | { toSQL(): { sql: string; params: unknown[] } };

/**
 * Statements rendered to SQL once and bound on every call: `build` writes them as drizzle templates
 * with named placeholders (`sql.placeholder("name")`), and each call fills those. For the statements of
 * a task's every step, whose text never changes: rendering a nested template costs tens of µs (drizzle
 * tests each object in it against a row of entity classes), filling its parameters about one.
 */
export function compiled<Values extends Record<string, unknown>>(build: () => SQL[]): (values: Values) => Statement[] {
  let queries: { sql: string; params: unknown[] }[] | undefined;
  return (values) => {
    queries ??= build().map((s) => dialect.sqlToQuery(s));
    return queries.map((q) => {
      const bound = { sql: q.sql, params: fillPlaceholders(q.params, values) };
      return { toSQL: () => bound };
    });
  };
}

/**
 * `UPDATE table SET … WHERE where [suffix]`, for the statements a task's every step builds: the same SQL
 * and parameters as drizzle's update builder (each value through its column's encoding, a JSON column
 * stringified, null kept null, an SQL value rendered in place; undefined skipped), without its cost.
 * drizzle renders each object in a template by testing it against a row of entity classes; the builder's
 * column names and parameters made a task's result write 36 µs a statement (measured in Node), this
 * string under 5. Write `where` with plain values (no column objects) for the same reason.
 */
export function updateStatement(table: Table, values: Record<string, unknown>, where: SQL, suffix = ""): Statement {
  const columns = getTableColumns(table);
  const sets: string[] = [];
  const params: unknown[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const column = columns[key];
    if (!column) throw new Error(`${key} is not a column of ${getTableName(table)}`);
    if (is(value, SQL)) {
      const rendered = dialect.sqlToQuery(value);
      sets.push(`"${column.name}" = ${rendered.sql}`);
      params.push(...rendered.params);
    } else {
      sets.push(`"${column.name}" = ?`);
      params.push(value === null ? null : column.mapToDriverValue(value));
    }
  }
  const condition = dialect.sqlToQuery(where);
  const query = {
    sql: `UPDATE "${getTableName(table)}" SET ${sets.join(", ")} WHERE ${condition.sql}${suffix ? ` ${suffix}` : ""}`,
    params: [...params, ...condition.params],
  };
  return { toSQL: () => query };
}

/**
 * Runs the statements as one D1 batch: through the group-commit writer when
 * the Db has one (objects/d1-writer.ts; the coordinator's own contexts do),
 * else straight to D1.
 */
export async function runBatch(db: Db, statements: Statement[]): Promise<StatementResult[]> {
  const queries = statements.map((s) => (is(s, SQL) ? dialect.sqlToQuery(s) : s.toSQL()));
  if (db.$writer) {
    // The writer binds them itself: the parameter limit is checked here, as the counted binding does.
    for (const q of queries) checkParameterCount(q.params.length);
    return db.$writer.batch(queries);
  }
  const d1 = db.$client;
  return d1.batch(queries.map((q) => d1.prepare(q.sql).bind(...q.params)));
}
