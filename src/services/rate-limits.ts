/**
 * Rate limits: per token (requests per second with a burst; tasks created per
 * minute) and per capability (tasks created per minute; `max_running` is
 * dispatch's, in SQL: db/rate-limits.ts). Buckets live in one RateLimiter
 * object per token or capability, so no single object takes every request.
 *
 * Bots and the setup script's callback are never limited: a noisy client
 * spends its own token's budget and cannot crowd out the fleet's messages.
 * Unused, a limit costs nothing: a token's own limits come with the token's
 * row (same query), and capability limits are cached per isolate.
 */
import type { Principal, TokenLimits } from "../auth";
import { type BucketLimit, perMinute } from "../core/rate-limit";
import { listRateLimits } from "../db/rate-limits";
import type { RateLimitRow } from "../db/schema";
import { AppError } from "../errors";
import { rateLimiter } from "../objects/stubs";
import type { Ctx } from "./context";
import { countMetric } from "./metrics";

/** How long an isolate trusts its copy of the capability limits (a change made elsewhere applies within this). */
export const CAPABILITY_LIMITS_TTL_MS = 10_000;
/** The `ADMIN_TOKEN` secret has no token row; its bucket is named this. */
const ADMIN_SECRET_SUBJECT = "admin-secret";

let capabilityCache: { atMs: number; rows: Map<string, RateLimitRow> } | null = null;

/** After a change to the capability limits: this isolate reads them again at once. */
export function forgetCapabilityLimits(): void {
  capabilityCache = null;
}

async function capabilityLimits(ctx: Ctx): Promise<Map<string, RateLimitRow>> {
  if (capabilityCache && ctx.now() - capabilityCache.atMs < CAPABILITY_LIMITS_TTL_MS) return capabilityCache.rows;
  const rows = await listRateLimits(ctx.db, "capability");
  capabilityCache = { atMs: ctx.now(), rows: new Map(rows.map((r) => [r.subject, r])) };
  return capabilityCache.rows;
}

interface TokenBuckets {
  subject: string;
  requests: BucketLimit | null;
  tasks: BucketLimit | null;
}

/** What limits a caller: its token's own row if it has one (wholly: a null there is "no limit"), else the variables. */
function bucketsOf(ctx: Ctx, principal: Principal | undefined): TokenBuckets | null {
  if (!principal || principal.kind === "bot" || principal.kind === "open") return null;
  const own: TokenLimits = principal.limits ?? null;
  const limits = own ?? ctx.config.defaultTokenLimits;
  const rps = limits.requestsPerSecond;
  return {
    subject: `token:${principal.tokenId ?? ADMIN_SECRET_SUBJECT}`,
    requests: rps ? { ratePerSecond: rps, burst: limits.burst ?? Math.max(1, Math.ceil(rps)) } : null,
    tasks: limits.tasksPerMinute ? perMinute(limits.tasksPerMinute) : null,
  };
}

const refuse = (what: string, retryAfterMs: number, details: Record<string, unknown>) => {
  countMetric("clawbot_rate_limited_total", { limit: String(details.limit), scope: String(details.scope ?? "token") });
  return new AppError("rate_limited", `${what}; retry after ${Math.ceil(retryAfterMs / 1000)} s`, {
    ...details,
    retry_after_s: Math.ceil(retryAfterMs / 1000),
  });
};

/** Every API request of a limited token: one token from its request bucket, or `429 rate_limited`. */
export async function limitRequest(ctx: Ctx, principal: Principal | undefined): Promise<void> {
  const buckets = bucketsOf(ctx, principal);
  if (!buckets?.requests) return;
  const { allowed, retryAfterMs } = await rateLimiter(ctx.env, buckets.subject).take("requests", buckets.requests, 1);
  if (!allowed) {
    throw refuse("this token's request rate limit is reached", retryAfterMs, {
      limit: "requests_per_second",
      requests_per_second: buckets.requests.ratePerSecond,
      burst: buckets.requests.burst,
    });
  }
}

/**
 * Before a request creates tasks (`capabilities`: one entry per task): the
 * token's tasks-per-minute bucket and each capability's. All or nothing: a
 * refusal gives back what the others took. A request bigger than a limit's
 * whole minute can never pass: that is a 400, not a 429.
 */
export async function chargeTaskCreation(ctx: Ctx, principal: Principal | undefined, capabilities: (string | null)[]): Promise<void> {
  if (!principal || principal.kind === "bot" || capabilities.length === 0) return;
  const charges: { subject: string; limit: BucketLimit; cost: number; what: string; details: Record<string, unknown> }[] = [];
  const token = bucketsOf(ctx, principal);
  if (token?.tasks) {
    charges.push({
      subject: token.subject,
      limit: token.tasks,
      cost: capabilities.length,
      what: "this token's tasks-per-minute limit is reached",
      details: { limit: "tasks_per_minute", scope: "token", tasks_per_minute: token.tasks.burst },
    });
  }
  const limits = await capabilityLimits(ctx);
  if (limits.size > 0) {
    const perCapability = new Map<string, number>();
    for (const cap of capabilities) if (cap !== null) perCapability.set(cap, (perCapability.get(cap) ?? 0) + 1);
    for (const [cap, cost] of perCapability) {
      const perMin = limits.get(cap)?.tasksPerMinute;
      if (!perMin) continue;
      charges.push({
        subject: `capability:${cap}`,
        limit: perMinute(perMin),
        cost,
        what: `capability ${cap}'s tasks-per-minute limit is reached`,
        details: { limit: "tasks_per_minute", scope: "capability", capability: cap, tasks_per_minute: perMin },
      });
    }
  }
  for (const c of charges) {
    if (c.cost > c.limit.burst) {
      throw new AppError(
        "validation_failed",
        `this request creates ${c.cost} tasks; the limit allows ${c.limit.burst} a minute`,
        c.details,
      );
    }
  }
  const taken: typeof charges = [];
  for (const c of charges) {
    const { allowed, retryAfterMs } = await rateLimiter(ctx.env, c.subject).take("tasks", c.limit, c.cost);
    if (!allowed) {
      await Promise.all(taken.map((t) => rateLimiter(ctx.env, t.subject).giveBack("tasks", t.limit, t.cost)));
      throw refuse(c.what, retryAfterMs, c.details);
    }
    taken.push(c);
  }
}
