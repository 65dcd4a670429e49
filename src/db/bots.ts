/** Bot queries. Status is derived in SQL with the same rule as core/bot-status. */
import { and, asc, desc, eq, gt, isNull, type SQL, sql } from "drizzle-orm";
import { type BotStatus, deriveBotStatus } from "../core/bot-status";
import { runBatch } from "./batch";
import { type Db, inJsonList } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { type BotRow, botDispatch, bots, coordinatorState, events, type TaskRow, tokens } from "./schema";
import { bestDueTaskQuery } from "./task-claims";
import { revokeBotTokens, type TokenInsert } from "./tokens";

/** SQL twin of deriveBotStatus(); keep the two in step (the integration tests compare them). */
function derivedStatus(nowMs: number, staleAfterMs: number): SQL<BotStatus> {
  return sql<BotStatus>`CASE
    WHEN NOT (${bots.connected} = 1 OR (${bots.lastHeartbeatAt} IS NOT NULL AND ${bots.lastHeartbeatAt} > ${nowMs - staleAfterMs}
      AND ${bots.lastHeartbeatAt} > COALESCE(${bots.disconnectedAt}, 0))) THEN 'offline'
    WHEN ${bots.held} = 1 OR ${bots.currentTaskId} IS NOT NULL THEN 'busy'
    ELSE 'online' END`;
}

/** A bot's derived status (the rule of core/bot-status, applied to a row). */
export function botStatusOf(row: BotRow, nowMs: number, staleAfterMs: number): BotStatus {
  return deriveBotStatus(
    {
      connected: row.connected,
      held: row.held,
      currentTaskId: row.currentTaskId,
      lastHeartbeatAtMs: row.lastHeartbeatAt,
      disconnectedAtMs: row.disconnectedAt,
    },
    nowMs,
    staleAfterMs,
  );
}

const hasCapability = (capability: string): SQL => sql`EXISTS (SELECT 1 FROM json_each(${bots.capabilities}) WHERE value = ${capability})`;

export type BotInsert = typeof bots.$inferInsert;

export async function insertBot(db: Db, row: BotInsert, tokenRow: TokenInsert): Promise<void> {
  await runBatch(db, [
    db.insert(bots).values(row),
    db.insert(tokens).values(tokenRow),
    db
      .insert(events)
      .values({ entityType: "bot", entityId: row.id, type: "bot_registered", data: { name: row.name }, createdAt: row.createdAt }),
  ]);
}

export async function getBot(db: Db, id: string): Promise<BotRow | undefined> {
  return db.select().from(bots).where(eq(bots.id, id)).get();
}

export interface BotFilter {
  status?: BotStatus;
  capability?: string;
  limit: number;
  cursor: Cursor | null;
}

export async function listBots(db: Db, f: BotFilter, nowMs: number, staleAfterMs: number) {
  const rows = await db
    .select()
    .from(bots)
    .where(
      and(
        f.status ? sql`${derivedStatus(nowMs, staleAfterMs)} = ${f.status}` : undefined,
        f.capability ? hasCapability(f.capability) : undefined,
        afterCursor(bots, f.cursor),
      ),
    )
    .orderBy(...newestFirst(bots))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

/**
 * Healthier bots first, in steps of 0.1 (so bots of about the same health
 * share the work least recently assigned first, not the top one alone).
 */
export const healthierFirst = sql`CAST(${bots.healthScore} * 10 AS INTEGER) DESC`;

/** A bot row may be given a task now: live socket, not held, holds none, not quarantined. */
export const idleBot = sql`connected = 1 AND held = 0 AND current_task_id IS NULL AND quarantined_at IS NULL`;

/**
 * What a bot must be, asked of the `bots` row or of its `bot_dispatch` copy (kept by triggers):
 * idle (may be given a task now), available (connected and not held, busy or not), and available
 * and not quarantined.
 */
const BOT_STATES = {
  idle: { row: idleBot, copy: sql`d.idle = 1` },
  available: { row: sql`connected = 1 AND held = 0`, copy: sql`d.available = 1` },
  availableUnquarantined: {
    row: sql`connected = 1 AND held = 0 AND quarantined_at IS NULL`,
    copy: sql`d.available = 1 AND d.quarantined = 0`,
  },
} as const;

/**
 * Whether a bot in `state` can run a task of `capability` (a column that may be null: any bot may run
 * it) — a seek either way: down bot_dispatch's indexes for a capability, down bots_dispatch_idx's
 * prefix for any bot. Never a walk of the fleet per task asked about.
 */
export function botExistsFor(capability: SQL, state: keyof typeof BOT_STATES): SQL {
  const { row, copy } = BOT_STATES[state];
  return sql`(CASE WHEN ${capability} IS NULL THEN EXISTS (SELECT 1 FROM bots WHERE ${row})
      ELSE EXISTS (SELECT 1 FROM bot_dispatch d WHERE d.capability = ${capability} AND ${copy}) END)`;
}

/**
 * The id of the first idle bot in dispatch order (healthier, then least recently assigned; ties in a
 * stable order) that can run `capability` (a value or placeholder), or of all idle bots for null: a
 * seek down bot_dispatch_order_idx (the triggers' copy, see schema.ts), or down bots_dispatch_idx.
 */
export function firstIdleBot(capability: unknown | null): SQL {
  if (capability === null) {
    return sql`(SELECT id FROM bots WHERE ${idleBot} ORDER BY ${healthierFirst}, last_assigned_at ASC, id ASC LIMIT 1)`;
  }
  return sql`(SELECT bot_id FROM bot_dispatch WHERE capability = ${capability} AND idle = 1
              ORDER BY tier DESC, last_assigned_at ASC, bot_id ASC LIMIT 1)`;
}

/** Bots that can take a task right now, in dispatch order (see firstIdleBot). */
export async function findIdleConnectedBots(db: Db, capability: string | null, limit: number): Promise<BotRow[]> {
  if (capability === null) {
    return db.select().from(bots).where(idleBot).orderBy(healthierFirst, asc(bots.lastAssignedAt), asc(bots.id)).limit(limit);
  }
  const rows = await db
    .select({ bot: bots })
    .from(botDispatch)
    .innerJoin(bots, eq(bots.id, botDispatch.botId))
    .where(and(eq(botDispatch.capability, capability), eq(botDispatch.idle, true)))
    .orderBy(desc(botDispatch.tier), asc(botDispatch.lastAssignedAt), asc(botDispatch.botId))
    .limit(limit);
  // The copy changes in the same statement as the row, so it says what the row says; the claim an offer makes checks the row anyway.
  return rows.map((r) => r.bot);
}

/**
 * The bot's object moved its health: the score, and the quarantine when it
 * starts or ends (with its event), in one batch.
 */
export async function writeBotHealth(
  db: Db,
  id: string,
  health: { score: number; quarantinedAtMs: number | null },
  event: { type: string; data: Record<string, unknown> } | null,
  nowMs: number,
): Promise<void> {
  const update = db.update(bots).set({ healthScore: health.score, quarantinedAt: health.quarantinedAtMs }).where(eq(bots.id, id));
  if (!event) {
    await update;
    return;
  }
  await db.batch([update, botEvent(db, id, event.type, event.data, nowMs)]);
}

/** Online bots (socket or fresh heartbeat) that are neither busy, held nor quarantined, for `GET /bots/available`. */
export async function listAvailableBots(db: Db, capability: string | undefined, nowMs: number, staleAfterMs: number): Promise<BotRow[]> {
  return db
    .select()
    .from(bots)
    .where(
      and(
        sql`${derivedStatus(nowMs, staleAfterMs)} = 'online'`,
        isNull(bots.quarantinedAt),
        capability ? hasCapability(capability) : undefined,
      ),
    )
    .orderBy(asc(bots.lastAssignedAt), asc(bots.id)) // ties (same millisecond) in a stable order
    .limit(200);
}

/** Which of these bots hold a live socket. One bound parameter, whatever the list's length (JSON through json_each). */
export async function connectedAmong(db: Db, botIds: readonly string[]): Promise<Set<string>> {
  if (!botIds.length) return new Set();
  const rows = await db
    .select({ id: bots.id })
    .from(bots)
    .where(and(inJsonList(bots.id, botIds), eq(bots.connected, true)));
  return new Set(rows.map((r) => r.id));
}

/** Bots with a live control socket (`GET /ws/connections`). */
export function listConnectedBots(db: Db, limit: number): Promise<Pick<BotRow, "id" | "name" | "connectedAt">[]> {
  return db.select({ id: bots.id, name: bots.name, connectedAt: bots.connectedAt }).from(bots).where(eq(bots.connected, true)).limit(limit);
}

/**
 * A setup-script launch: registers the deployment's bot the first time, revokes
 * its previous tokens and stores the new one, all in one batch.
 */
export async function issueLaunchToken(
  db: Db,
  bot: { id: string; register: BotInsert | null },
  token: TokenInsert,
  nowMs: number,
): Promise<void> {
  await runBatch(db, [
    ...(bot.register ? [db.insert(bots).values(bot.register)] : []),
    revokeBotTokens(db, bot.id, nowMs),
    db.insert(tokens).values(token),
  ]);
}

/** Connected bots after `afterId` in id order, a page at a time (callers page with the last id they got). */
export async function connectedBotIdsAfter(db: Db, afterId: string, limit: number): Promise<string[]> {
  const rows = await db
    .select({ id: bots.id })
    .from(bots)
    .where(and(eq(bots.connected, true), gt(bots.id, afterId)))
    .orderBy(asc(bots.id))
    .limit(limit);
  return rows.map((r) => r.id);
}

const SWEEP_CURSOR_KEY = "sweep_connected_cursor";

/**
 * The sweeper's next page of connected bots to check, from where the last sweep stopped (wrapping
 * around at the end), and the cursor moved past it: every connected bot is checked in turn, a bounded
 * number per sweep, whatever the size of the fleet. Three round trips at most (read, page, write).
 */
export async function nextConnectedPage(db: Db, limit: number): Promise<string[]> {
  const cursor = (await db.select().from(coordinatorState).where(eq(coordinatorState.key, SWEEP_CURSOR_KEY)).get())?.value ?? "";
  let ids = await connectedBotIdsAfter(db, cursor, limit);
  if (ids.length < limit && cursor !== "")
    ids = [...ids, ...(await connectedBotIdsAfter(db, "", limit - ids.length))].filter((id, i, all) => all.indexOf(id) === i);
  const next = ids.length < limit ? "" : ids[ids.length - 1]!;
  await db
    .insert(coordinatorState)
    .values({ key: SWEEP_CURSOR_KEY, value: next })
    .onConflictDoUpdate({ target: coordinatorState.key, set: { value: next } });
  return ids;
}

/** A bot event, written only if the bot exists (a connect for an unknown id leaves nothing behind). */
const botEvent = (db: Db, id: string, type: string, data: Record<string, unknown>, nowMs: number) =>
  db.insert(events).select(
    db
      .select({
        id: sql<number>`NULL`.as("id"), // SQLite numbers it
        entityType: sql<string>`'bot'`.as("entity_type"),
        entityId: bots.id,
        type: sql<string>`${type}`.as("type"),
        data: sql<string>`${JSON.stringify(data)}`.as("data"),
        createdAt: sql<number>`${nowMs}`.as("created_at"),
      })
      .from(bots)
      .where(eq(bots.id, id)),
  );

export interface Connected {
  /** The bot as stored after the connect; undefined: no such bot (nothing was written). */
  bot: BotRow | undefined;
  /** The task the bot would claim with `capabilities` (the ones the caller last knew), if any, read in the same round trip. */
  dispatchable: TaskRow[];
}

/**
 * A socket opened: mark the bot connected, record the event, read the bot back
 * and (with the capabilities the caller last knew) the tasks it could take —
 * one round trip, so a reconnect costs the token check plus this.
 */
export async function markConnected(
  db: Db,
  id: string,
  nowMs: number,
  pull: { capabilities: string[] } | null,
  healthScore: number | null = null,
): Promise<Connected> {
  const health = healthScore === null ? {} : { healthScore };
  const [, , found, dispatchable] = await db.batch([
    db
      .update(bots)
      .set({ connected: true, connectedAt: nowMs, lastHeartbeatAt: nowMs, updatedAt: nowMs, ...health })
      .where(eq(bots.id, id)),
    botEvent(db, id, "bot_connected", {}, nowMs),
    db.select().from(bots).where(eq(bots.id, id)),
    bestDueTaskQuery(db, pull?.capabilities ?? [], nowMs),
  ]);
  return { bot: found[0], dispatchable: pull ? dispatchable : [] };
}

/** The socket is gone: mark the bot disconnected and read it back (what it holds), in one round trip. */
export async function markDisconnected(db: Db, id: string, nowMs: number, reason: string): Promise<BotRow | undefined> {
  const [, , found] = await db.batch([
    db.update(bots).set({ connected: false, disconnectedAt: nowMs, updatedAt: nowMs }).where(eq(bots.id, id)),
    botEvent(db, id, "bot_disconnected", { reason }, nowMs),
    db.select().from(bots).where(eq(bots.id, id)),
  ]);
  return found[0];
}

/**
 * REST heartbeat. Writes D1 only when the stored beat is older than `throttleMs`
 * (a conditional update), so a bot beating every few seconds costs one write per window.
 */
export async function recordHeartbeat(db: Db, id: string, nowMs: number, throttleMs: number): Promise<void> {
  await db
    .update(bots)
    .set({ lastHeartbeatAt: nowMs, updatedAt: nowMs })
    .where(
      and(
        eq(bots.id, id),
        sql`(${bots.lastHeartbeatAt} IS NULL OR ${bots.lastHeartbeatAt} < ${nowMs - throttleMs} OR ${bots.lastHeartbeatAt} <= COALESCE(${bots.disconnectedAt}, 0))`,
      ),
    );
}

export async function setHeld(db: Db, id: string, held: boolean, nowMs: number): Promise<void> {
  await runBatch(db, [
    db.update(bots).set({ held, updatedAt: nowMs }).where(eq(bots.id, id)),
    db.insert(events).values({ entityType: "bot", entityId: id, type: held ? "bot_held" : "bot_released", data: {}, createdAt: nowMs }),
  ]);
}

export async function deleteBotRows(db: Db, id: string, nowMs: number): Promise<void> {
  await runBatch(db, [
    db.delete(bots).where(eq(bots.id, id)),
    revokeBotTokens(db, id, nowMs),
    db.insert(events).values({ entityType: "bot", entityId: id, type: "bot_deleted", data: {}, createdAt: nowMs }),
  ]);
}

/** Bots per derived status, and how many of each are quarantined (the metrics scrape). */
export async function countBotsByStatus(
  db: Db,
  nowMs: number,
  staleAfterMs: number,
): Promise<{ status: BotStatus; n: number; quarantined: number }[]> {
  const status = derivedStatus(nowMs, staleAfterMs);
  return db
    .select({ status, n: sql<number>`count(*)`, quarantined: sql<number>`count(${bots.quarantinedAt})` })
    .from(bots)
    .groupBy(status)
    .all();
}
