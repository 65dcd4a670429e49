/** /api/v1/rate-limits — per-token and per-capability limits (the variables give tokens' defaults). Admin only. */
import { createRoute } from "@hono/zod-openapi";
import { requireAdmin } from "../auth";
import { DeletedSchema, errorResponses, IdParam } from "../contracts/common";
import { CapabilityLimitsBody, CapabilityParam, RateLimitListSchema, RateLimitSchema, TokenLimitsBody } from "../contracts/rate-limits";
import { deleteRateLimit, type LimitScope, listRateLimits, putRateLimit } from "../db/rate-limits";
import type { RateLimitRow } from "../db/schema";
import { findTokenById } from "../db/tokens";
import { AppError, notFound } from "../errors";
import { type AppContext, createRouter, jsonBody, jsonResponse } from "../http";
import { iso } from "../presenters";
import { dispatchDueTasks } from "../services/dispatch";
import { forgetCapabilityLimits } from "../services/rate-limits";

const tags = ["Rate limits"];
export const rateLimitsRouter = createRouter();

const limitJson = (r: RateLimitRow) => ({
  scope: r.scope,
  subject: r.subject,
  requests_per_second: r.requestsPerSecond,
  burst: r.burst,
  tasks_per_minute: r.tasksPerMinute,
  max_running: r.maxRunning,
  updated_at: iso(r.updatedAt)!,
});

/** Due tasks a changed capability limit may have freed (bounded, like the sweeper's). */
const DISPATCH_AFTER_CHANGE = 100;

async function capabilityChanged(c: AppContext): Promise<void> {
  forgetCapabilityLimits();
  await dispatchDueTasks(c.get("ctx"), DISPATCH_AFTER_CHANGE);
}

rateLimitsRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "Every token's and capability's limits, and the defaults from the variables",
    responses: { 200: jsonResponse(RateLimitListSchema, "Limits"), ...errorResponses(401, 403) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const d = ctx.config.defaultTokenLimits;
    const limits = (await listRateLimits(ctx.db)).map(limitJson);
    return c.json(
      { defaults: { requests_per_second: d.requestsPerSecond, burst: d.burst, tasks_per_minute: d.tasksPerMinute }, limits },
      200,
    );
  },
);

rateLimitsRouter.openapi(
  createRoute({
    method: "put",
    path: "/tokens/{id}",
    tags,
    summary: "Set a token's limits (they replace the defaults for it wholly; a null is no limit)",
    request: { params: IdParam, ...jsonBody(TokenLimitsBody) },
    responses: { 200: jsonResponse(RateLimitSchema, "The token's limits"), ...errorResponses(400, 401, 403, 404) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const token = await findTokenById(ctx.db, id);
    if (!token) throw notFound("token", id);
    if (token.kind === "bot") throw new AppError("validation_failed", "bots are never rate limited", { token_id: id });
    const values = {
      requestsPerSecond: body.requests_per_second,
      burst: body.burst,
      tasksPerMinute: body.tasks_per_minute,
      maxRunning: null,
    };
    const row = await putRateLimit(ctx.db, "token", id, values, ctx.now());
    ctx.log.info("token limits set", { token_id: id, ...body });
    return c.json(limitJson(row), 200);
  },
);

rateLimitsRouter.openapi(
  createRoute({
    method: "put",
    path: "/capabilities/{capability}",
    tags,
    summary: "Set a capability's limits: tasks created per minute, and tasks running at once (dispatch honours it)",
    request: { params: CapabilityParam, ...jsonBody(CapabilityLimitsBody) },
    responses: { 200: jsonResponse(RateLimitSchema, "The capability's limits"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { capability } = c.req.valid("param");
    const body = c.req.valid("json");
    const values = { requestsPerSecond: null, burst: null, tasksPerMinute: body.tasks_per_minute, maxRunning: body.max_running };
    const row = await putRateLimit(ctx.db, "capability", capability, values, ctx.now());
    ctx.log.info("capability limits set", { capability, ...body });
    await capabilityChanged(c);
    return c.json(limitJson(row), 200);
  },
);

for (const scope of ["token", "capability"] as const satisfies LimitScope[]) {
  rateLimitsRouter.openapi(
    createRoute({
      method: "delete",
      path: scope === "token" ? "/tokens/{id}" : "/capabilities/{capability}",
      tags,
      summary: scope === "token" ? "Remove a token's own limits (the defaults apply again)" : "Remove a capability's limits",
      request: { params: scope === "token" ? IdParam : CapabilityParam },
      responses: { 200: jsonResponse(DeletedSchema, "Removed"), ...errorResponses(401, 403, 404) },
    }),
    async (c) => {
      requireAdmin(c);
      const ctx = c.get("ctx");
      const params = c.req.valid("param") as { id?: string; capability?: string };
      const subject = (scope === "token" ? params.id : params.capability)!;
      if (!(await deleteRateLimit(ctx.db, scope, subject))) {
        throw new AppError("not_found", `${scope} ${subject} has no limits of its own`, { scope, subject });
      }
      ctx.log.info("limits removed", { scope, subject });
      if (scope === "capability") await capabilityChanged(c);
      return c.json({ id: subject, deleted: true }, 200);
    },
  );
}
