/** Typed configuration read from the Worker's vars and secrets, with defaults. */

import type { BackoffPolicy } from "./core/backoff";
import { DEFAULT_HEALTH_POLICY, type HealthPolicy } from "./core/health";
import { DEFAULT_PROJECT_INIT_PROMPT } from "./core/project";
import { type LogLevel, parseLogLevel } from "./log";

export interface Config {
  authMode: "token" | "open";
  adminToken: string | null;
  botStaleAfterMs: number;
  botReconnectGraceMs: number;
  heartbeatIntervalS: number;
  backoff: BackoffPolicy;
  logLevel: LogLevel;
  /** A website project's initialization prompt (placeholders {name}, {description}, {domain}). */
  projectInitPrompt: string;
  /** How long one OpenClaw initialization run may take. */
  projectInitTimeoutS: number;
  /** Finished jobs, tasks, events, logs and streams older than this are removed by the cleanup. */
  retentionDays: number;
  /** Largest artifact accepted (uploads past it are refused and leave nothing behind). */
  artifactMaxBytes: number;
  /** How long a signed artifact URL works. */
  artifactUrlTtlMs: number;
  /** Bot health: the window, and the score below which a bot is quarantined. */
  healthPolicy: HealthPolicy;
  /** Limits of a token that has none of its own (null: none). */
  defaultTokenLimits: { requestsPerSecond: number | null; burst: number | null; tasksPerMinute: number | null };
  /**
   * Guarded batches go through the group-commit writer (objects/d1-writer.ts) unless `D1_GROUP_COMMIT=off`:
   * with many bots it folds results that arrive together into one D1 round trip (measured: a 500-task
   * batch through 50 bots, 0.14 round trips per task against 1.11 without it; README "Benchmark").
   */
  d1GroupCommit: boolean;
}

/** A positive number, or null when unset or not one. */
function optionalPositive(value: string | undefined): number | null {
  const n = Number(value);
  return value !== undefined && value.trim() !== "" && Number.isFinite(n) && n > 0 ? n : null;
}

function positiveInt(value: string | undefined, fallback: number): number {
  const n = Number(value);
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : fallback;
}

export function readConfig(env: Env): Config {
  return {
    authMode: env.AUTH_MODE === "open" ? "open" : "token",
    adminToken: env.ADMIN_TOKEN?.trim() || null,
    botStaleAfterMs: positiveInt(env.BOT_STALE_AFTER_S, 90) * 1000,
    botReconnectGraceMs: positiveInt(env.BOT_RECONNECT_GRACE_S, 30) * 1000,
    heartbeatIntervalS: positiveInt(env.HEARTBEAT_INTERVAL_S, 30),
    backoff: {
      baseDelayMs: positiveInt(env.RETRY_BASE_DELAY_MS, 2000),
      maxDelayMs: positiveInt(env.RETRY_MAX_DELAY_MS, 60000),
    },
    logLevel: parseLogLevel(env.LOG_LEVEL),
    projectInitPrompt: env.PROJECT_INIT_PROMPT?.trim() || DEFAULT_PROJECT_INIT_PROMPT,
    projectInitTimeoutS: Math.min(positiveInt(env.PROJECT_INIT_TIMEOUT_S, 600), 3000),
    retentionDays: positiveInt(env.RETENTION_DAYS, 30),
    artifactMaxBytes: positiveInt(env.ARTIFACT_MAX_BYTES, 100 * 1024 * 1024),
    artifactUrlTtlMs: positiveInt(env.ARTIFACT_URL_TTL_S, 900) * 1000,
    healthPolicy: {
      ...DEFAULT_HEALTH_POLICY,
      windowMs: positiveInt(env.BOT_HEALTH_WINDOW_S, DEFAULT_HEALTH_POLICY.windowMs / 1000) * 1000,
      quarantineBelow: Math.min(1, optionalPositive(env.BOT_QUARANTINE_BELOW) ?? DEFAULT_HEALTH_POLICY.quarantineBelow),
    },
    defaultTokenLimits: {
      requestsPerSecond: optionalPositive(env.RATE_LIMIT_REQUESTS_PER_SECOND),
      burst: optionalPositive(env.RATE_LIMIT_BURST),
      tasksPerMinute: optionalPositive(env.RATE_LIMIT_TASKS_PER_MINUTE),
    },
    d1GroupCommit: env.D1_GROUP_COMMIT?.trim().toLowerCase() !== "off",
  };
}
