/** API tokens: random, shown once, stored only as SHA-256. */
import { and, desc, eq, isNull } from "drizzle-orm";
import { randomToken, sha256Hex } from "../crypto/encoding";
import { timeOrderedId } from "../crypto/ids";
import type { Db } from "./client";
import type { LimitValues } from "./rate-limits";
import { rateLimits, type TokenKind, type TokenRow, tokens } from "./schema";

export type TokenInsert = typeof tokens.$inferInsert;

/** A new token: the secret to show once, and the row that stores only its hash. */
export async function mintToken(
  kind: TokenKind,
  name: string,
  botId: string | null,
  nowMs: number,
): Promise<{ secret: string; row: TokenInsert }> {
  const secret = `cbc_${kind}_${randomToken()}`;
  return { secret, row: { id: timeOrderedId(), kind, name, botId, tokenHash: await sha256Hex(secret), createdAt: nowMs } };
}

/** A live token by its secret, with its own rate limits if it has any (same round trip). */
export async function findActiveToken(db: Db, secret: string): Promise<(TokenRow & { limits: LimitValues | null }) | undefined> {
  const hash = await sha256Hex(secret);
  const found = await db
    .select({
      token: tokens,
      requestsPerSecond: rateLimits.requestsPerSecond,
      burst: rateLimits.burst,
      tasksPerMinute: rateLimits.tasksPerMinute,
      limitedAt: rateLimits.updatedAt,
    })
    .from(tokens)
    .leftJoin(rateLimits, and(eq(rateLimits.scope, "token"), eq(rateLimits.subject, tokens.id)))
    .where(and(eq(tokens.tokenHash, hash), isNull(tokens.revokedAt)))
    .get();
  if (!found) return undefined;
  const { token, limitedAt, ...limits } = found;
  return { ...token, limits: limitedAt === null ? null : { ...limits, maxRunning: null } };
}

/** A live token by id. */
export function findTokenById(db: Db, id: string): Promise<TokenRow | undefined> {
  return db
    .select()
    .from(tokens)
    .where(and(eq(tokens.id, id), isNull(tokens.revokedAt)))
    .get();
}

export async function insertToken(db: Db, row: TokenInsert): Promise<void> {
  await db.insert(tokens).values(row);
}

export async function listTokens(db: Db): Promise<TokenRow[]> {
  return db.select().from(tokens).orderBy(desc(tokens.createdAt)).limit(500);
}

/** Revokes a live token; returns it, or undefined if there is no such live token. */
export async function revokeToken(db: Db, id: string, nowMs: number): Promise<TokenRow | undefined> {
  const rows = await db
    .update(tokens)
    .set({ revokedAt: nowMs })
    .where(and(eq(tokens.id, id), isNull(tokens.revokedAt)))
    .returning();
  return rows[0];
}

/** Revokes every live token of a bot (statement for a batch). */
export const revokeBotTokens = (db: Db, botId: string, nowMs: number) =>
  db
    .update(tokens)
    .set({ revokedAt: nowMs })
    .where(and(eq(tokens.botId, botId), isNull(tokens.revokedAt)));
