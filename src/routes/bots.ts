/** /api/v1/bots — registration, listing, liveness and manual holds. */
import { createRoute } from "@hono/zod-openapi";
import { requireAdmin, requireAdminOrBot, requireReader } from "../auth";
import { AvailableQuery, BotListQuery, BotRegisterBody, BotRegisteredSchema, BotSchema } from "../contracts/bots";
import { errorResponses } from "../contracts/common";
import { timeOrderedId } from "../crypto/ids";
import { getBot, insertBot, listAvailableBots, listBots, recordHeartbeat, setHeld } from "../db/bots";
import { decodeCursor } from "../db/pagination";
import type { BotRow } from "../db/schema";
import { mintToken } from "../db/tokens";
import { loadOr404 } from "../errors";
import { type AppContext, createRouter, jsonBody, jsonResponse } from "../http";
import { botSession } from "../objects/stubs";
import { botJson } from "../presenters";
import { removeBot } from "../services/bots";
import type { Ctx } from "../services/context";
import { resourceRoutes } from "./resource-routes";

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
    const id = timeOrderedId();
    const token = await mintToken("bot", `bot:${body.name}`, id, nowMs);
    const capabilities = [...new Set(body.capabilities)];
    await insertBot(ctx.db, { id, name: body.name, capabilities, metadata: body.metadata, createdAt: nowMs, updatedAt: nowMs }, token.row);
    ctx.log.info("bot registered", { bot_id: id, name: body.name, capabilities });
    return c.json({ ...show(c, await loadBot(ctx, id)), token: token.secret }, 201);
  },
);

const routes = resourceRoutes(botsRouter, tags);

routes.list({
  path: "/",
  summary: "List bots (filter by status, capability; newest first)",
  query: BotListQuery,
  item: BotSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const page = await listBots(ctx.db, { ...q, cursor: decodeCursor(q.cursor) }, ctx.now(), ctx.config.botStaleAfterMs);
    return { items: page.items.map((row) => show(c, row)), nextCursor: page.nextCursor };
  },
});

routes.list({
  path: "/available",
  summary: "Online, idle bots (optionally with a capability), least recently used first",
  query: AvailableQuery,
  item: BotSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const rows = await listAvailableBots(ctx.db, q.capability, ctx.now(), ctx.config.botStaleAfterMs);
    return { items: rows.map((row) => show(c, row)), nextCursor: null };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get a bot",
  item: BotSchema,
  read: async (c, id) => {
    requireReader(c, id);
    return show(c, await loadBot(c.get("ctx"), id));
  },
});

routes.act({
  method: "post",
  path: "/{id}/heartbeat",
  summary: "Record a heartbeat (bots without a WebSocket)",
  item: BotSchema,
  errors: [401, 403, 404],
  run: async (c, id) => {
    requireAdminOrBot(c, id);
    const ctx = c.get("ctx");
    await loadBot(ctx, id);
    // One D1 write per third of the stale window at most, however often the bot beats.
    await recordHeartbeat(ctx.db, id, ctx.now(), Math.floor(ctx.config.botStaleAfterMs / 3));
    return show(c, await loadBot(ctx, id));
  },
});

for (const [action, held] of [
  ["busy", true],
  ["available", false],
] as const) {
  routes.act({
    method: "post",
    path: `/{id}/${action}`,
    summary: held ? "Hold the bot: it gets no tasks until /available" : "Release a hold: the bot takes tasks again",
    item: BotSchema,
    errors: [401, 403, 404],
    run: async (c, id) => {
      requireAdminOrBot(c, id);
      const ctx = c.get("ctx");
      const before = await loadBot(ctx, id);
      if (before.held !== held) {
        await setHeld(ctx.db, id, held, ctx.now());
        ctx.log.info(held ? "bot held" : "bot released", { bot_id: id });
      }
      if (!held) await botSession(ctx.env, id).wake();
      return show(c, await loadBot(ctx, id));
    },
  });
}

routes.act({
  method: "post",
  path: "/{id}/unquarantine",
  summary: "Clear a bot's quarantine and its health window (admin): it is offered work again at once",
  item: BotSchema,
  errors: [401, 403, 404],
  run: async (c, id) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    await loadBot(ctx, id);
    await botSession(ctx.env, id).clearHealth();
    return show(c, await loadBot(ctx, id));
  },
});

routes.remove({
  summary: "Delete a bot (its task is re-queued, its token revoked, its socket closed)",
  run: async (c, id) => {
    const ctx = c.get("ctx");
    await removeBot(ctx, await loadBot(ctx, id));
  },
});
