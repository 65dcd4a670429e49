/** API tokens: random, shown once, stored as SHA-256. */
import { and, desc, eq, isNull } from "drizzle-orm";
import type { Db } from "./client";
import { type TokenRow, tokens } from "./schema";

export type TokenKind = "admin" | "viewer" | "bot";

export function newTokenSecret(kind: TokenKind): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  const body = btoa(String.fromCharCode(...bytes))
    .replace(/=+$/, "")
    .replace(/\+/g, "-")
    .replace(/\//g, "_");
  return `cbc_${kind}_${body}`;
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export async function findActiveToken(db: Db, secret: string): Promise<TokenRow | undefined> {
  const hash = await sha256Hex(secret);
  return db
    .select()
    .from(tokens)
    .where(and(eq(tokens.tokenHash, hash), isNull(tokens.revokedAt)))
    .get();
}

export async function insertToken(db: Db, row: typeof tokens.$inferInsert): Promise<void> {
  await db.insert(tokens).values(row);
}

export async function listTokens(db: Db): Promise<TokenRow[]> {
  return db.select().from(tokens).orderBy(desc(tokens.createdAt)).limit(500);
}

export async function revokeToken(db: Db, id: string, nowMs: number): Promise<boolean> {
  const res = await db
    .update(tokens)
    .set({ revokedAt: nowMs })
    .where(and(eq(tokens.id, id), isNull(tokens.revokedAt)));
  return ((res as { meta?: { changes?: number } }).meta?.changes ?? 0) === 1;
}
