/**
 * Idempotent create, one way for every resource. An idempotency key is bound
 * to a hash of the request it was first used with and lives 24 hours:
 * - same key, same request → the resource made the first time (`created: false`);
 * - same key, another request → `409 idempotency_conflict`, nothing made;
 * - N parallel creates with one key → one insert wins on the key's unique
 *   index; the others re-read the winner's resource;
 * - a key older than 24 hours is released and starts afresh.
 */
import { sha256Hex } from "../crypto/encoding";
import { type KeyedResource, releaseExpiredKey } from "../db/idempotency";
import { AppError } from "../errors";
import type { Ctx } from "./context";

export const IDEMPOTENCY_KEY_TTL_MS = 24 * 60 * 60 * 1000;

/** What a lookup by key returns: the resource, and what the key was bound to. */
export interface Keyed<T> {
  resource: T;
  requestHash: string | null;
  createdAtMs: number;
}

/** A stored row as `find` returns it (the row is the resource). */
export const keyedRow = <R extends { idempotencyHash: string | null; createdAt: number }>(row: R | undefined): Keyed<R> | undefined =>
  row && { resource: row, requestHash: row.idempotencyHash, createdAtMs: row.createdAt };

/** The request a key is bound to: the validated body without the key itself. */
export const withoutKey = <B extends { idempotency_key?: string }>({ idempotency_key: _key, ...rest }: B) => rest;

export interface CreateOnce<T> {
  kind: KeyedResource;
  /** From `Idempotency-Key` or the body's `idempotency_key`; none means always create. */
  key: string | undefined;
  /** The validated request, as the client meant it (the key itself left out). */
  request: unknown;
  find: (key: string) => Promise<Keyed<T> | undefined>;
  /** Inserts (storing `requestHash` with the key) and returns the new resource; throws on a unique-key violation. */
  insert: (requestHash: string | null) => Promise<T>;
}

export async function createOnce<T>(ctx: Ctx, spec: CreateOnce<T>): Promise<{ resource: T; created: boolean }> {
  const { key } = spec;
  if (!key) return { resource: await spec.insert(null), created: true };
  const hash = await requestHash(spec.request);
  const replay = (found: Keyed<T>) => {
    if (found.requestHash !== null && found.requestHash !== hash) {
      throw new AppError("idempotency_conflict", "this Idempotency-Key was used with a different request", { idempotency_key: key });
    }
    return { resource: found.resource, created: false };
  };
  let existing = await spec.find(key);
  if (existing && existing.createdAtMs < ctx.now() - IDEMPOTENCY_KEY_TTL_MS) {
    await releaseExpiredKey(ctx.db, spec.kind, key, ctx.now() - IDEMPOTENCY_KEY_TTL_MS);
    existing = undefined;
  }
  if (existing) return replay(existing);
  try {
    return { resource: await spec.insert(hash), created: true };
  } catch (err) {
    const winner = await spec.find(key);
    if (winner) return replay(winner);
    throw err;
  }
}

/** SHA-256 of the request's canonical JSON (object keys sorted at every level). */
export function requestHash(request: unknown): Promise<string> {
  return sha256Hex(JSON.stringify(canonical(request)));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
  );
}
