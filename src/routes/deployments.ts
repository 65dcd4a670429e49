/** /api/v1/deployments — provisioning of OpenClaw VPSes, each run by its own Durable Object. */
import { createRoute, z } from "@hono/zod-openapi";
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
import { constantTimeEqual } from "../crypto/compare";
import { connectedAmong } from "../db/bots";
import { getDeployment, getDeploymentByIdempotencyKey, insertDeployment, listDeploymentEvents, listDeployments } from "../db/deployments";
import { decodeCursor } from "../db/pagination";
import type { DeploymentRow } from "../db/schema";
import { AppError, loadOr404, unwrapRpc } from "../errors";
import { createRouter, idempotencyKey, jsonBody, jsonResponse, setNextCursor } from "../http";
import { deploymentRunner } from "../objects/stubs";
import { deploymentJson, deploymentLogJson, deploymentStatusUrl } from "../presenters";
import type { Ctx } from "../services/context";
import { createOnce } from "../services/create-once";
import { readDeployConfig } from "../services/deploy-deps";
import { callbackToken } from "../services/deployment-stages";

const tags = ["Deployments"];
export const deploymentsRouter = createRouter();

const load = (ctx: Ctx, id: string) => loadOr404("deployment", id, getDeployment(ctx.db, id));

/** Deployments as the API shows them, with whether each one's bot is online (one query for the whole page). */
async function present(ctx: Ctx, rows: DeploymentRow[]) {
  const online = await connectedAmong(
    ctx.db,
    rows.flatMap((d) => (d.botId ? [d.botId] : [])),
  );
  return rows.map((d) => deploymentJson(d, d.botId !== null && online.has(d.botId)));
}

async function show(ctx: Ctx, row: DeploymentRow) {
  const [view] = await present(ctx, [row]);
  return view!;
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
    const { resource, created } = await createOnce({
      key,
      find: (k) => getDeploymentByIdempotencyKey(ctx.db, k),
      insert: async () => {
        const config = readDeployConfig(ctx.env);
        if (config.secretKey.length < 16) {
          throw new AppError("service_unavailable", "deployments are not configured: set the DEPLOY_SECRET_KEY secret (16+ characters)");
        }
        const provider = body.provider ?? config.provider;
        if (provider !== config.provider) {
          throw new AppError("validation_failed", `this coordinator provisions with '${config.provider}'`, { provider });
        }
        const nowMs = ctx.now();
        const id = crypto.randomUUID();
        const { name, region, plan } = body;
        await insertDeployment(ctx.db, {
          id,
          name,
          provider,
          region,
          plan,
          idempotencyKey: key ?? null,
          lastProgressAt: nowMs,
          createdAt: nowMs,
          updatedAt: nowMs,
        });
        await deploymentRunner(ctx.env, id).start();
        ctx.log.info("deployment created", { deployment_id: id, provider, region, plan });
        return load(ctx, id);
      },
    });
    // A replay (a double click) answers with the one deployment it made: nothing new was bought.
    if (!created) return c.json(await show(ctx, resource), 200);
    c.header("Location", deploymentStatusUrl(resource.id));
    return c.json(await show(ctx, resource), 202);
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
    return c.json(await present(ctx, items), 200);
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
      c.header("Link", `<${deploymentStatusUrl(id)}/logs?after=${next}&limit=${q.limit}>; rel="next"`);
    }
    return c.json(items.map(deploymentLogJson), 200);
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
      const runner = deploymentRunner(ctx.env, id);
      const row = unwrapRpc(action === "retry" ? await runner.retry() : await runner.cancel());
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
    unwrapRpc(await deploymentRunner(ctx.env, id).teardown());
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
    await deploymentRunner(ctx.env, id).callback(body.event, body.message);
    return c.json({ accepted: true }, 200);
  },
);
