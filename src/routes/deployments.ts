/** /api/v1/deployments — provisioning of OpenClaw VPSes, each run by its own Durable Object. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { errorResponses, IdParam } from "../contracts/common";
import {
  CallbackBody,
  DeploymentCreateBody,
  DeploymentListQuery,
  DeploymentLogEntry,
  DeploymentLogsQuery,
  DeploymentSchema,
} from "../contracts/deployments";
import { constantTimeEqual } from "../crypto/compare";
import { timeOrderedId } from "../crypto/ids";
import { connectedAmong } from "../db/bots";
import { getDeployment, getDeploymentByIdempotencyKey, insertDeployment, listDeploymentEvents, listDeployments } from "../db/deployments";
import { decodeCursor } from "../db/pagination";
import type { DeploymentRow } from "../db/schema";
import { AppError, loadOr404, unwrapRpc } from "../errors";
import { createRouter, idempotencyKey, jsonBody, jsonResponse } from "../http";
import { deploymentRunner } from "../objects/stubs";
import { deploymentJson, deploymentLogJson, deploymentStatusUrl } from "../presenters";
import type { Ctx } from "../services/context";
import { createOnce, keyedRow, withoutKey } from "../services/create-once";
import { deployConfigProblem, readDeployConfig } from "../services/deploy-deps";
import { callbackToken } from "../services/deployment-stages";
import { resourceRoutes } from "./resource-routes";
import { eventRoutes } from "./streams";

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
      ...errorResponses(400, 401, 403, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const key = idempotencyKey(c, body.idempotency_key);
    const { resource, created } = await createOnce(ctx, {
      kind: "deployment",
      key,
      request: withoutKey(body),
      find: async (k) => keyedRow(await getDeploymentByIdempotencyKey(ctx.db, k)),
      insert: async (requestHash) => {
        const config = readDeployConfig(ctx.env);
        const problem = deployConfigProblem(config);
        if (problem) throw new AppError("service_unavailable", `deployments are not configured safely: ${problem}`);
        const provider = body.provider ?? config.provider;
        if (provider !== config.provider) {
          throw new AppError("validation_failed", `this coordinator provisions with '${config.provider}'`, { provider });
        }
        const nowMs = ctx.now();
        const id = timeOrderedId();
        const { name, region, plan } = body;
        await insertDeployment(ctx.db, {
          id,
          name,
          provider,
          region,
          plan,
          idempotencyKey: key ?? null,
          idempotencyHash: requestHash,
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

const routes = resourceRoutes(deploymentsRouter, tags);

routes.list({
  path: "/",
  summary: "List deployments (filter by status; newest first)",
  query: DeploymentListQuery,
  item: DeploymentSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const page = await listDeployments(ctx.db, { status: q.status, limit: q.limit, cursor: decodeCursor(q.cursor) });
    return { items: await present(ctx, page.items), nextCursor: page.nextCursor };
  },
});

routes.get({
  path: "/{id}",
  summary: "A deployment: status, stage, VPS, bot, last error",
  item: DeploymentSchema,
  read: async (c, id) => {
    requireReader(c);
    const ctx = c.get("ctx");
    return show(ctx, await load(ctx, id));
  },
});

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
  routes.act({
    method: "post",
    path: `/{id}/${action}`,
    summary,
    item: DeploymentSchema,
    errors: [401, 403, 404, 409],
    run: async (c, id) => {
      requireAdmin(c);
      const ctx = c.get("ctx");
      await load(ctx, id);
      const runner = deploymentRunner(ctx.env, id);
      return show(ctx, unwrapRpc(action === "retry" ? await runner.retry() : await runner.cancel()));
    },
  });
}

routes.remove({
  summary: "Tear down: destroy the VPS, delete the OpenRouter key, remove the bot and its tokens (503: retry DELETE)",
  errors: [401, 403, 404, 503],
  run: async (c, id) => {
    const ctx = c.get("ctx");
    await load(ctx, id);
    unwrapRpc(await deploymentRunner(ctx.env, id).teardown());
  },
});

/** The setup script's callback. Authenticated by its per-deployment, per-launch token, not an API token. */
routes.act({
  method: "post",
  path: "/{id}/callback",
  summary: "Setup script callback (progress, complete, error)",
  body: CallbackBody,
  item: z.object({ accepted: z.boolean() }),
  errors: [400, 401, 404],
  run: async (c, id, body) => {
    const ctx = c.get("ctx");
    const row = await load(ctx, id);
    const presented = /^Bearer\s+(\S+)$/i.exec(c.req.header("Authorization") ?? "")?.[1] ?? "";
    const expected = await callbackToken(readDeployConfig(ctx.env).secretKey, id, row.launchCount);
    if (!presented || !constantTimeEqual(presented, expected)) throw new AppError("unauthorized", "invalid callback token");
    await deploymentRunner(ctx.env, id).callback(body.event, body.message);
    return { accepted: true };
  },
});

eventRoutes(deploymentsRouter, tags, "deployment");
