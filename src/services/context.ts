/** What every coordination step needs: bindings, D1, config, a logger and a clock. */
import { type Config, readConfig } from "../config";
import { type Db, getDb } from "../db/client";
import { createLogger, type Logger } from "../log";
import { d1Writer } from "../objects/stubs";

export interface Ctx {
  env: Env;
  db: Db;
  config: Config;
  log: Logger;
  now: () => number;
}

export function createCtx(env: Env, logFields: Record<string, unknown> = {}): Ctx {
  const config = readConfig(env);
  const writer = config.d1GroupCommit ? d1Writer(env) : undefined;
  return { env, db: getDb(env.DB, writer), config, log: createLogger(logFields, config.logLevel), now: Date.now };
}
