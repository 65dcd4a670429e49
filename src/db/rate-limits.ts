/** Rate and concurrency limits (one row per token or capability), and the SQL that makes dispatch honour `max_running`. */
import { and, eq, type SQL, sql } from "drizzle-orm";
import type { Db } from "./client";
import { type RateLimitRow, rateLimits } from "./schema";

export type LimitScope = RateLimitRow["scope"];
export type LimitValues = Pick<RateLimitRow, "requestsPerSecond" | "burst" | "tasksPerMinute" | "maxRunning">;

/** Most rows listed (and cached per isolate): limits are configuration, not data. */
export const MAX_LIMIT_ROWS = 1000;

export function listRateLimits(db: Db, scope?: LimitScope): Promise<RateLimitRow[]> {
  return db
    .select()
    .from(rateLimits)
    .where(scope ? eq(rateLimits.scope, scope) : undefined)
    .orderBy(rateLimits.scope, rateLimits.subject)
    .limit(MAX_LIMIT_ROWS)
    .all();
}

export function getRateLimit(db: Db, scope: LimitScope, subject: string): Promise<RateLimitRow | undefined> {
  return db
    .select()
    .from(rateLimits)
    .where(and(eq(rateLimits.scope, scope), eq(rateLimits.subject, subject)))
    .get();
}

/** Sets a scope's limits (every column: a null clears that limit). */
export async function putRateLimit(db: Db, scope: LimitScope, subject: string, values: LimitValues, nowMs: number): Promise<RateLimitRow> {
  const row = { scope, subject, ...values, updatedAt: nowMs };
  await db
    .insert(rateLimits)
    .values(row)
    .onConflictDoUpdate({ target: [rateLimits.scope, rateLimits.subject], set: { ...values, updatedAt: nowMs } });
  return row;
}

export async function deleteRateLimit(db: Db, scope: LimitScope, subject: string): Promise<boolean> {
  const rows = await db
    .delete(rateLimits)
    .where(and(eq(rateLimits.scope, scope), eq(rateLimits.subject, subject)))
    .returning({ subject: rateLimits.subject });
  return rows.length > 0;
}

/**
 * True in SQL while the capability `capability` (a column or value) may start
 * another task: no `max_running` for it, or fewer of its tasks held by bots.
 * Part of every claim's conditions, so two dispatches racing for the last
 * slot cannot both take it (D1 runs each batch alone). Unused, it is one
 * primary-key probe that finds nothing.
 */
export const capabilityHasRoom = (capability: SQL): SQL =>
  sql`NOT EXISTS (SELECT 1 FROM rate_limits lim WHERE lim.scope = 'capability' AND lim.subject = ${capability}
        AND lim.max_running IS NOT NULL
        AND lim.max_running <= (SELECT count(*) FROM tasks held WHERE held.capability = lim.subject
                                AND held.status IN ('assigned', 'in_progress')))`;
