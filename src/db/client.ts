import { getTableColumns, type SQL, sql, type Table } from "drizzle-orm";
import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import * as schema from "./schema";

/**
 * What a batch's caller reads of each statement's result: its rows and how many it changed. The
 * group-commit writer answers with this much of D1's result and no more (its `meta` holds a dozen
 * timings and sizes nobody here reads), since each answer crosses an RPC per writer.
 */
export interface StatementResult {
  results: unknown[];
  meta: { changes: number };
}

/** Where guarded batches go when they do not go straight to D1 (objects/d1-writer.ts). */
export interface BatchWriter {
  batch(queries: { sql: string; params: unknown[] }[]): Promise<StatementResult[]>;
}

export type Db = DrizzleD1Database<typeof schema> & { $client: D1Database; $writer?: BatchWriter };

/** The database, checked and counted; with `writer`, its batches go through group commit. */
export function getDb(d1: D1Database, writer?: BatchWriter): Db {
  const db = drizzle(withParameterLimit(d1), { schema }) as Db;
  if (writer) db.$writer = writer;
  return db;
}

/**
 * D1 round trips made by this isolate (every statement run, every batch, every
 * exec counts one), and the statements they carried (a batch counts each of its statements). The benchmark reads it (`GET /api/v1/_bench/d1`, only with
 * BENCH_MODE=1) to count what a task, a heartbeat and a reconnect cost instead
 * of estimating it from the code. Under wrangler dev the Worker and its
 * Durable Objects share one isolate, so one counter sees them all.
 */
export const d1RoundTrips = { count: 0, statements: 0, rowsRead: 0, waitedMs: 0 };

/**
 * Adds the time until D1 answered to `d1RoundTrips.waitedMs`: on the benchmark's one-task-at-a-time path
 * this is the share of a task's latency D1 itself takes (the clock moves on I/O, which is what is timed).
 */
export function timedD1<T>(pending: Promise<T>): Promise<T> {
  const startedMs = Date.now();
  return pending.finally(() => {
    d1RoundTrips.waitedMs += Date.now() - startedMs;
  });
}

/**
 * Adds the rows D1 says its statements read (`meta.rows_read`, what production D1 bills and what a
 * statement really costs) to `d1RoundTrips.rowsRead`: a statement that scans a table shows here as
 * rows read growing with the table. Counted for batches and `run`/`all` (`first` and `raw` carry no meta).
 */
export function countRowsRead<T>(results: T): T {
  for (const r of Array.isArray(results) ? results : [results]) {
    d1RoundTrips.rowsRead += (r as { meta?: { rows_read?: number } } | null)?.meta?.rows_read ?? 0;
  }
  return results;
}

/**
 * Production D1 refuses a statement that binds more than 100 parameters; the
 * local one (SQLite) allows 32,766. Every statement is checked here, in every
 * environment, so a list bound one parameter per item fails in the tests the
 * way it would fail in production (lists go through json_each instead).
 */
export const MAX_BOUND_PARAMETERS = 100;

function withParameterLimit(d1: D1Database): D1Database {
  return Object.assign(Object.create(d1) as D1Database, {
    prepare(query: string) {
      return counted(d1.prepare(query));
    },
    batch: (statements: D1PreparedStatement[]) => {
      d1RoundTrips.count++;
      d1RoundTrips.statements += statements.length;
      return timedD1(d1.batch(statements)).then(countRowsRead);
    },
    exec: (query: string) => {
      d1RoundTrips.count++;
      d1RoundTrips.statements++;
      return timedD1(d1.exec(query));
    },
  });
}

export function checkParameterCount(count: number): void {
  if (count > MAX_BOUND_PARAMETERS) {
    throw new Error(`D1 allows ${MAX_BOUND_PARAMETERS} bound parameters per statement; this one binds ${count}`);
  }
}

/** A statement that checks its parameter count when bound and counts a round trip when run. */
function counted(statement: D1PreparedStatement): D1PreparedStatement {
  const bind = statement.bind.bind(statement);
  statement.bind = (...values: unknown[]) => {
    checkParameterCount(values.length);
    return counted(bind(...values));
  };
  for (const method of ["first", "run", "all", "raw"] as const) {
    const original = (statement[method] as (...a: unknown[]) => unknown).bind(statement);
    (statement as unknown as Record<string, unknown>)[method] = (...args: unknown[]) => {
      d1RoundTrips.count++;
      d1RoundTrips.statements++;
      const result = timedD1(original(...args) as Promise<unknown>);
      return method === "run" || method === "all" ? result.then(countRowsRead) : result;
    };
  }
  return statement;
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

/** A row read by raw SQL (snake_case, driver values) as drizzle would return it (camelCase, JSON and booleans mapped). */
export function rowFromRaw<T>(table: Table, raw: Record<string, unknown>): T {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(table))) {
    const value = raw[column.name];
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value);
  }
  return row as T;
}
