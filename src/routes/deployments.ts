/** /api/v1/deployments — provisioning of OpenClaw VPSes, each run by its own Durable Object. */
import { createRoute, z } from "@hono/zod-openapi";
import { and, eq, inArray } from "drizzle-orm";
import { requireAdmin, requireReader } from "../auth";
import { DeletedSchema, errorResponses, IdParam } from "../contracts/common";
import {
  CallbackBody,
  DeploymentCreateBody,
  DeploymentListQuery,
  DeploymentLogEntry,
  DeploymentLogsQuery,
  DeploymentSchema,
} from "../contracts/deployments";
import { type DeploymentStage, type DeploymentStatus, nextStage } from "../core/deployment-machine";
import { constantTimeEqual } from "../crypto/compare";
import { getDeployment, getDeploymentByIdempotencyKey, insertDeployment, listDeploymentEvents, listDeployments } from "../db/deployments";
import { decodeCursor } from "../db/pagination";
import { bots, type DeploymentRow } from "../db/schema";
import { iso } from "../db/serialize";
import { AppError, unwrapRpc } from "../errors";
import { createRouter, jsonBody, jsonResponse, setNextCursor } from "../http";
import type { Ctx } from "../services/context";
import { readDeployConfig } from "../services/deploy-deps";
import { callbackToken } from "../services/deployment-stages";
import { idempotencyKey } from "./tasks";

const tags = ["Deployments"];
export const deploymentsRouter = createRouter();

const runner = (ctx: Ctx, id: string) => ctx.env.DEPLOYMENT_RUNNER.get(ctx.env.DEPLOYMENT_RUNNER.idFromName(id));
const statusUrl = (id: string) => `/api/v1/deployments/${id}`;

async function load(ctx: Ctx, id: string): Promise<DeploymentRow> {
  const row = await getDeployment(ctx.db, id);
  if (!row) throw new AppError("not_found", `deployment ${id} does not exist`, { id });
  return row;
}

/** Which of these bots are connected: one query for a whole page of deployments. */
async function onlineBots(ctx: Ctx, botIds: (string | null)[]): Promise<Set<string>> {
  const ids = botIds.filter((id): id is string => Boolean(id));
  if (!ids.length) return new Set();
  const rows = await ctx.db
    .select({ id: bots.id })
    .from(bots)
    .where(and(inArray(bots.id, ids), eq(bots.connected, true)));
  return new Set(rows.map((r) => r.id));
}

async function show(ctx: Ctx, d: DeploymentRow) {
  return view(d, await onlineBots(ctx, [d.botId]));
}

function view(d: DeploymentRow, online: Set<string>) {
  return {
    id: d.id,
    name: d.name,
    provider: d.provider,
    region: d.region,
    plan: d.plan,
    status: d.status as DeploymentStatus,
    stage: d.stage as DeploymentStage | null,
    next_stage: d.status === "READY" ? null : nextStage(d.stage as DeploymentStage | null),
    error: d.error,
    vps: { order_id: d.vpsOrderId, service_id: d.vpsServiceId, ip: d.vpsIp, ssh_port: d.sshPort, host_key_sha256: d.hostKeySha256 },
    bot_id: d.botId,
    bot_online: d.botId !== null && online.has(d.botId),
    status_url: statusUrl(d.id),
    created_at: iso(d.createdAt)!,
    updated_at: iso(d.updatedAt)!,
    last_progress_at: iso(d.lastProgressAt)!,
    finished_at: iso(d.finishedAt),
  };
}

deploymentsRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Provision an OpenClaw VPS (202: the work runs in the background)",
    request: jsonBody(DeploymentCreateBody),
    responses: {
      202: jsonResponse(DeploymentSchema, "Accepted; follow status_url"),
      200: jsonResponse(DeploymentSchema, "Replayed idempotent create (nothing new was bought)"),
      ...errorResponses(400, 401, 403, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const key = idempotencyKey(c, body.idempotency_key);
    if (key) {
      const existing = await getDeploymentByIdempotencyKey(ctx.db, key);
      if (existing) return c.json(await show(ctx, existing), 200);
    }
    const config = readDeployConfig(ctx.env);
    if (config.secretKey.length < 16)
      throw new AppError("service_unavailable", "deployments are not configured: set the DEPLOY_SECRET_KEY secret (16+ characters)");
    const provider = body.provider ?? config.provider;
    if (provider !== config.provider)
      throw new AppError("validation_failed", `this coordinator provisions with '${config.provider}'`, { provider });
    const nowMs = ctx.now();
    const id = crypto.randomUUID();
    try {
      await insertDeployment(ctx.db, {
        id,
        name: body.name,
        provider,
        region: body.region,
        plan: body.plan,
        idempotencyKey: key ?? null,
        lastProgressAt: nowMs,
        createdAt: nowMs,
        updatedAt: nowMs,
      });
    } catch (err) {
      const winner = key ? await getDeploymentByIdempotencyKey(ctx.db, key) : undefined;
      if (winner) return c.json(await show(ctx, winner), 200); // a double click raced us: one deployment, one VPS
      throw err;
    }
    await runner(ctx, id).start(id);
    ctx.log.info("deployment created", { deployment_id: id, provider, region: body.region, plan: body.plan });
    c.header("Location", statusUrl(id));
    return c.json(await show(ctx, await load(ctx, id)), 202);
  },
);

deploymentsRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "List deployments (filter by status; newest first)",
    request: { query: DeploymentListQuery },
    responses: { 200: jsonResponse(z.array(DeploymentSchema), "Deployments"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const q = c.req.valid("query");
    const { items, nextCursor } = await listDeployments(ctx.db, { status: q.status, limit: q.limit, cursor: decodeCursor(q.cursor) });
    setNextCursor(c, nextCursor);
    const online = await onlineBots(
      ctx,
      items.map((d) => d.botId),
    );
    return c.json(
      items.map((d) => view(d, online)),
      200,
    );
  },
);

deploymentsRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags,
    summary: "A deployment: status, stage, VPS, bot, last error",
    request: { params: IdParam },
    responses: { 200: jsonResponse(DeploymentSchema, "The deployment"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    return c.json(await show(ctx, await load(ctx, c.req.valid("param").id)), 200);
  },
);

deploymentsRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}/logs",
    tags,
    summary: "The deployment's step log, oldest first (page with ?after=<last id>)",
    request: { params: IdParam, query: DeploymentLogsQuery },
    responses: { 200: jsonResponse(z.array(DeploymentLogEntry), "Log entries"), ...errorResponses(400, 401, 403, 404) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const q = c.req.valid("query");
    await load(ctx, id);
    const rows = await listDeploymentEvents(ctx.db, id, q.after, q.limit);
    const items = rows.slice(0, q.limit);
    if (rows.length > q.limit) {
      const next = String(items[items.length - 1]!.id);
      c.header("X-Next-Cursor", next);
      c.header("Link", `<${statusUrl(id)}/logs?after=${next}&limit=${q.limit}>; rel="next"`);
    }
    return c.json(
      items.map((e) => ({ id: e.id, level: e.level, type: e.type, stage: e.stage, message: e.message, created_at: iso(e.createdAt)! })),
      200,
    );
  },
);

for (const [action, summary] of [
  ["retry", "Restart the stage machine of a failed deployment (live resources are reused, nothing is bought twice)"],
  ["cancel", "Stop the stage machine (status ERROR, error 'cancelled'); DELETE tears down"],
] as const) {
  deploymentsRouter.openapi(
    createRoute({
      method: "post",
      path: `/{id}/${action}`,
      tags,
      summary,
      request: { params: IdParam },
      responses: { 200: jsonResponse(DeploymentSchema, "The deployment"), ...errorResponses(401, 403, 404, 409) },
    }),
    async (c) => {
      requireAdmin(c);
      const ctx = c.get("ctx");
      const { id } = c.req.valid("param");
      await load(ctx, id);
      const row = unwrapRpc(action === "retry" ? await runner(ctx, id).retry(id) : await runner(ctx, id).cancel(id));
      return c.json(await show(ctx, row), 200);
    },
  );
}

deploymentsRouter.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags,
    summary: "Tear down: destroy the VPS, delete the OpenRouter key, remove the bot and its tokens",
    request: { params: IdParam },
    responses: {
      200: jsonResponse(DeletedSchema, "Torn down"),
      ...errorResponses(401, 403, 404),
      503: jsonResponse(z.object({}), "Teardown failed; retry DELETE"),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    await load(ctx, id);
    unwrapRpc(await runner(ctx, id).teardown(id));
    return c.json({ id, deleted: true }, 200);
  },
);

/** The setup script's callback. Authenticated by its per-deployment, per-launch token, not an API token. */
deploymentsRouter.openapi(
  createRoute({
    method: "post",
    path: "/{id}/callback",
    tags,
    summary: "Setup script callback (progress, complete, error)",
    request: { params: IdParam, ...jsonBody(CallbackBody) },
    responses: { 200: jsonResponse(z.object({ accepted: z.boolean() }), "Accepted"), ...errorResponses(400, 401, 404) },
  }),
  async (c) => {
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const body = c.req.valid("json");
    const row = await load(ctx, id);
    const presented = /^Bearer\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "")?.[1] ?? "";
    const expected = await callbackToken(readDeployConfig(ctx.env).secretKey, id, row.launchCount);
    if (!presented || !constantTimeEqual(presented, expected)) throw new AppError("unauthorized", "invalid callback token");
    await runner(ctx, id).callback(id, body.event, body.message);
    return c.json({ accepted: true }, 200);
  },
);
