/** /api/v1/bots — registration, listing, liveness and manual holds. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireAdminOrBot, requireReader } from "../auth";
import { AvailableQuery, BotListQuery, BotRegisterBody, BotRegisteredSchema, BotSchema } from "../contracts/bots";
import { DeletedSchema, errorResponses, IdParam } from "../contracts/common";
import { getBot, insertBot, listAvailableBots, listBots, recordHeartbeat, setHeld } from "../db/bots";
import { decodeCursor } from "../db/pagination";
import type { BotRow } from "../db/schema";
import { mintToken } from "../db/tokens";
import { loadOr404 } from "../errors";
import { type AppContext, createRouter, jsonBody, jsonResponse, setNextCursor } from "../http";
import { botSession } from "../objects/stubs";
import { botJson } from "../presenters";
import { removeBot } from "../services/bots";
import type { Ctx } from "../services/context";

const tags = ["Bots"];
export const botsRouter = createRouter();

const loadBot = (ctx: Ctx, id: string) => loadOr404("bot", id, getBot(ctx.db, id));

const show = (c: AppContext, row: BotRow) => {
  const ctx = c.get("ctx");
  return botJson(row, ctx.now(), ctx.config.botStaleAfterMs);
};

botsRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Register a bot (returns its token once)",
    request: jsonBody(BotRegisterBody),
    responses: { 201: jsonResponse(BotRegisteredSchema, "Registered"), ...errorResponses(400, 401, 403, 413) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const nowMs = ctx.now();
    const id = crypto.randomUUID();
    const token = await mintToken("bot", `bot:${body.name}`, id, nowMs);
    const capabilities = [...new Set(body.capabilities)];
    await insertBot(ctx.db, { id, name: body.name, capabilities, metadata: body.metadata, createdAt: nowMs, updatedAt: nowMs }, token.row);
    ctx.log.info("bot registered", { bot_id: id, name: body.name, capabilities });
    return c.json({ ...show(c, await loadBot(ctx, id)), token: token.secret }, 201);
  },
);

botsRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "List bots (filter by status, capability; newest first)",
    request: { query: BotListQuery },
    responses: { 200: jsonResponse(z.array(BotSchema), "Bots"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const q = c.req.valid("query");
    const { items, nextCursor } = await listBots(ctx.db, { ...q, cursor: decodeCursor(q.cursor) }, ctx.now(), ctx.config.botStaleAfterMs);
    setNextCursor(c, nextCursor);
    return c.json(
      items.map((row) => show(c, row)),
      200,
    );
  },
);

botsRouter.openapi(
  createRoute({
    method: "get",
    path: "/available",
    tags,
    summary: "Online, idle bots (optionally with a capability)",
    request: { query: AvailableQuery },
    responses: { 200: jsonResponse(z.array(BotSchema), "Available bots"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const rows = await listAvailableBots(ctx.db, c.req.valid("query").capability, ctx.now(), ctx.config.botStaleAfterMs);
    return c.json(
      rows.map((row) => show(c, row)),
      200,
    );
  },
);

botsRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags,
    summary: "Get a bot",
    request: { params: IdParam },
    responses: { 200: jsonResponse(BotSchema, "The bot"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    requireReader(c, id);
    return c.json(show(c, await loadBot(c.get("ctx"), id)), 200);
  },
);

botsRouter.openapi(
  createRoute({
    method: "post",
    path: "/{id}/heartbeat",
    tags,
    summary: "Record a heartbeat (bots without a WebSocket)",
    request: { params: IdParam },
    responses: { 200: jsonResponse(BotSchema, "The bot"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    requireAdminOrBot(c, id);
    const ctx = c.get("ctx");
    await loadBot(ctx, id);
    // One D1 write per third of the stale window at most, however often the bot beats.
    await recordHeartbeat(ctx.db, id, ctx.now(), Math.floor(ctx.config.botStaleAfterMs / 3));
    return c.json(show(c, await loadBot(ctx, id)), 200);
  },
);

for (const [action, held] of [
  ["busy", true],
  ["available", false],
] as const) {
  botsRouter.openapi(
    createRoute({
      method: "post",
      path: `/{id}/${action}`,
      tags,
      summary: held ? "Hold the bot: it gets no tasks until /available" : "Release a hold: the bot takes tasks again",
      request: { params: IdParam },
      responses: { 200: jsonResponse(BotSchema, "The bot"), ...errorResponses(401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      requireAdminOrBot(c, id);
      const ctx = c.get("ctx");
      const before = await loadBot(ctx, id);
      if (before.held !== held) {
        await setHeld(ctx.db, id, held, ctx.now());
        ctx.log.info(held ? "bot held" : "bot released", { bot_id: id });
      }
      if (!held) await botSession(ctx.env, id).wake();
      return c.json(show(c, await loadBot(ctx, id)), 200);
    },
  );
}

botsRouter.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags,
    summary: "Delete a bot (its task is re-queued, its token revoked, its socket closed)",
    request: { params: IdParam },
    responses: { 200: jsonResponse(DeletedSchema, "Deleted"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireAdmin(c);
    const { id } = c.req.valid("param");
    const ctx = c.get("ctx");
    await removeBot(ctx, await loadBot(ctx, id));
    return c.json({ id, deleted: true }, 200);
  },
);
