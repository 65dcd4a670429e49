/** What every coordination step needs: bindings, D1, config, a logger and a clock. */
import { type Config, readConfig } from "../config";
import { type BatchWriter, type Db, getDb } from "../db/client";
import { createLogger, type Logger } from "../log";
import { d1Writer } from "../objects/stubs";

export interface Ctx {
  env: Env;
  db: Db;
  config: Config;
  log: Logger;
  now: () => number;
}

/**
 * What a context shares with every other context of the same bindings: the
 * config read from them and the database (drizzle builds its schema's
 * relational config when made: measured at a fifth of the coordinator's CPU
 * under load when made per request and per bot message).
 */
const shared = new WeakMap<Env, { config: Config; db: Db }>();

export function createCtx(env: Env, logFields: Record<string, unknown> = {}): Ctx {
  let base = shared.get(env);
  if (!base) {
    const config = readConfig(env);
    // The writer's stub is made per batch: a stub belongs to the request that made it.
    const writer: BatchWriter | undefined = config.d1GroupCommit ? { batch: (queries) => d1Writer(env).batch(queries) } : undefined;
    base = { config, db: getDb(env.DB, writer) };
    shared.set(env, base);
  }
  return { env, db: base.db, config: base.config, log: createLogger(logFields, base.config.logLevel), now: Date.now };
}

/** How long a result written behind may wait at the group-commit writer for the next create (objects/kept-result.ts). */
export const RESULT_LINGER_MS = 5;

const lingeringDbs = new WeakMap<Env, Db>();

/**
 * The context with a database whose guarded batches may wait RESULT_LINGER_MS at the group-commit
 * writer for company; null without the writer (`D1_GROUP_COMMIT=off`).
 */
export function lingeringCtx(ctx: Ctx): Ctx | null {
  if (!ctx.config.d1GroupCommit) return null;
  let db = lingeringDbs.get(ctx.env);
  if (!db) {
    const env = ctx.env;
    db = getDb(env.DB, { batch: (queries) => d1Writer(env).batch(queries, RESULT_LINGER_MS) });
    lingeringDbs.set(env, db);
  }
  return { ...ctx, db };
}
