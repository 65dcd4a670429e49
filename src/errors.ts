/**
 * One error envelope for every client: {"error":{"code","message","details","request_id"}}.
 * Codes are stable; clients branch on them, never on messages.
 */
import type { ContentfulStatusCode } from "hono/utils/http-status";

const ERROR_STATUS = {
  bad_request: 400,
  invalid_json: 400,
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  bot_not_found: 404,
  task_not_found: 404,
  workflow_not_found: 404,
  token_not_found: 404,
  deployment_not_found: 404,
  job_not_found: 404,
  project_not_found: 404,
  artifact_not_found: 404,
  schedule_not_found: 404,
  invalid_transition: 409,
  conflict: 409,
  not_finished: 409,
  bot_unavailable: 409,
  bot_not_connected: 409,
  idempotency_conflict: 409,
  run_in_progress: 409,
  payload_too_large: 413,
  unsupported_media_type: 415,
  range_not_satisfiable: 416,
  rate_limited: 429,
  upgrade_required: 426,
  internal_error: 500,
  service_unavailable: 503,
} as const satisfies Record<string, ContentfulStatusCode>;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "AppError";
  }

  get status(): ContentfulStatusCode {
    return ERROR_STATUS[this.code];
  }
}

export interface ErrorEnvelope {
  error: { code: string; message: string; details: Record<string, unknown>; request_id?: string };
}

export function errorEnvelope(code: string, message: string, details: Record<string, unknown> = {}, requestId?: string): ErrorEnvelope {
  return { error: { code, message, details, ...(requestId ? { request_id: requestId } : {}) } };
}

export type ResourceKind = "bot" | "task" | "workflow" | "token" | "deployment" | "job" | "project" | "artifact" | "schedule";

export const notFound = (what: ResourceKind, id: string) => new AppError(`${what}_not_found`, `${what} ${id} does not exist`, { id });

/** The row a lookup found, or the resource's 404 (`<kind>_not_found`). */
export async function loadOr404<T>(kind: ResourceKind, id: string, lookup: Promise<T | undefined>): Promise<T> {
  const row = await lookup;
  if (row === undefined) throw notFound(kind, id);
  return row;
}

/**
 * Errors do not keep their class across Durable Object RPC, so an object's
 * methods return this envelope and the Worker turns it back into an AppError.
 */
export type RpcResult<T> = { ok: true; value: T } | { ok: false; code: ErrorCode; message: string; details: Record<string, unknown> };

export async function asRpcResult<T>(work: () => Promise<T>): Promise<RpcResult<T>> {
  try {
    return { ok: true, value: await work() };
  } catch (err) {
    if (err instanceof AppError) return { ok: false, code: err.code, message: err.message, details: err.details };
    throw err;
  }
}

export function unwrapRpc<T>(result: RpcResult<T>): T {
  if (result.ok) return result.value;
  throw new AppError(result.code, result.message, result.details);
}

/** A task action refused for what the task is now (finished, cancelled, held by another bot): sending it again cannot change that. */
export function refusedForGood(err: unknown): err is AppError {
  return err instanceof AppError && (err.code === "invalid_transition" || err.code === "forbidden");
}
