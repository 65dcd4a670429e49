/** What every coordination step needs: bindings, D1, config, a logger and a clock. */
import { type Config, readConfig } from "../config";
import { type Db, getDb } from "../db/client";
import { createLogger, type Logger } from "../log";

export interface Ctx {
  env: Env;
  db: Db;
  config: Config;
  log: Logger;
  now: () => number;
}

export function createCtx(env: Env, logFields: Record<string, unknown> = {}): Ctx {
  const config = readConfig(env);
  return { env, db: getDb(env.DB), config, log: createLogger(logFields, config.logLevel), now: Date.now };
}
