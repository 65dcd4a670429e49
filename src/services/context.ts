/** What every coordination step needs: bindings, D1, config, a logger and a clock. */
import { type Config, readConfig } from "../config";
import { type BatchWriter, type Db, getDb, type StatementResult } from "../db/client";
import { createLogger, type Logger } from "../log";
import type { Query, WriterAnswer } from "../objects/d1-writer";
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
    const writer: BatchWriter | undefined = config.d1GroupCommit ? { batch: (queries) => writeNoting(env, queries, 0) } : undefined;
    base = { config, db: getDb(env.DB, writer) };
    shared.set(env, base);
  }
  return { env, db: base.db, config: base.config, log: createLogger(logFields, base.config.logLevel), now: Date.now };
}

/**
 * How long a result written behind waits at the group-commit writer (objects/kept-result.ts). Measured
 * side by side, full benches, 50 bots, paired median to the platform floor: 0 ms 1.64-1.65x (the
 * write's work runs on this 2-core machine while the ack and the next create wait for a core), 1-2 ms
 * 1.34-1.48x, 5 ms 1.56-1.58x, 15 ms 1.73-1.74x (the next create arrives while the result is still
 * waiting or just going, and waits behind it).
 */
export const RESULT_LINGER_MS = 2;
/** After the writer was seen under load, results are written at once for this long. */
const WRITER_LOAD_MEMORY_MS = 1000;

/** When this isolate last saw other writers' batches in flight at the group-commit writer. */
let writerBusySeenAtMs = Number.NEGATIVE_INFINITY;

async function writeNoting(env: Env, queries: Query[], lingerMs: number): Promise<StatementResult[]> {
  // (cast: RPC's type of the results' `unknown` rows is `never`; the object returns them as they are)
  const answer = (await d1Writer(env).batch(queries, lingerMs)) as unknown as WriterAnswer;
  if (answer.othersInFlight) writerBusySeenAtMs = Date.now();
  return answer.results;
}

const lingeringDbs = new WeakMap<Env, Db>();

/**
 * The context with a database whose guarded batches may wait RESULT_LINGER_MS at the group-commit
 * writer for company; null without the writer (`D1_GROUP_COMMIT=off`) or while it is under load: a
 * result is then written at once, since its write has company anyway, and writing behind would cost
 * every result a storage put for a wait it no longer saves (measured: throughput fell by a tenth).
 */
export function lingeringCtx(ctx: Ctx): Ctx | null {
  if (!ctx.config.d1GroupCommit || Date.now() - writerBusySeenAtMs < WRITER_LOAD_MEMORY_MS) return null;
  let db = lingeringDbs.get(ctx.env);
  if (!db) {
    const env = ctx.env;
    db = getDb(env.DB, { batch: (queries) => writeNoting(env, queries, RESULT_LINGER_MS) });
    lingeringDbs.set(env, db);
  }
  return { ...ctx, db };
}

/** Forgets the writer's load this isolate saw (tests of the quiet path). */
export function forgetWriterLoad(): void {
  writerBusySeenAtMs = Number.NEGATIVE_INFINITY;
}
