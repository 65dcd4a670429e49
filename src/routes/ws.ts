/** /api/v1/ws — the bot control WebSocket and its operator endpoints. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireAdminOrBot, requireReader } from "../auth";
import { ErrorSchema, errorResponses } from "../contracts/common";
import { isHeld } from "../core/task-machine";
import { listConnectedBots } from "../db/bots";
import { getTask } from "../db/tasks";
import { AppError, loadOr404, notFound } from "../errors";
import { createRouter, jsonResponse } from "../http";
import { TOKEN_ID_HEADER } from "../objects/bot-session";
import { botSession } from "../objects/stubs";
import { connectionJson } from "../presenters";
import { resourceRoutes } from "./resource-routes";

const tags = ["WebSocket"];
export const wsRouter = createRouter();

/**
 * `GET /ws/control?bot_id=…` upgrades to the bot's control socket, held by its
 * Durable Object. The Worker authenticates and checks the bot exists first.
 */
wsRouter.get("/control", async (c) => {
  const ctx = c.get("ctx");
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    throw new AppError("upgrade_required", "this endpoint speaks WebSocket: send 'Upgrade: websocket'");
  }
  const botId = c.req.query("bot_id");
  if (!botId || botId.length > 100) throw new AppError("validation_failed", "query parameter bot_id is required", { field: "bot_id" });
  requireAdminOrBot(c, botId);
  // The bot's object records which token opened the socket, to close it when that token is revoked.
  const principal = c.get("principal");
  const forwarded = new Request(c.req.raw);
  forwarded.headers.delete(TOKEN_ID_HEADER);
  if ("tokenId" in principal && principal.tokenId) forwarded.headers.set(TOKEN_ID_HEADER, principal.tokenId);
  // The object reads the bot in the same round trip that marks it connected; it answers 404 for an unknown id.
  const res = await botSession(ctx.env, botId).fetch(forwarded);
  if (res.status === 404) throw notFound("bot", botId);
  return res;
});

// Documented by hand: the upgrade is not a JSON route, but clients should find it in /openapi.json.
wsRouter.openAPIRegistry.registerPath({
  method: "get",
  path: "/control",
  tags,
  summary: "Bot control WebSocket (Upgrade: websocket). Messages: see the README's protocol table.",
  request: {
    query: z.object({
      bot_id: z.string().openapi({ description: "The connecting bot's id" }),
      token: z.string().optional().openapi({ description: "The bot's token, for clients that cannot set Authorization" }),
    }),
  },
  responses: {
    101: { description: 'Switching protocols; the server sends {"type":"connected"} first' },
    ...errorResponses(400, 401, 403, 404),
    426: { description: "Not a WebSocket upgrade", content: { "application/json": { schema: ErrorSchema } } },
  },
});

const Connection = z.object({ bot_id: z.string(), name: z.string(), connected_at: z.string().nullable() });

wsRouter.openapi(
  createRoute({
    method: "get",
    path: "/connections",
    tags,
    summary: "Bots with a live control WebSocket",
    responses: {
      200: jsonResponse(z.object({ total: z.number().int(), connections: z.array(Connection) }), "Live connections"),
      ...errorResponses(401, 403),
    },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const rows = await listConnectedBots(ctx.db, 1000);
    return c.json({ total: rows.length, connections: rows.map(connectionJson) }, 200);
  },
);

resourceRoutes(wsRouter, tags).act({
  method: "post",
  path: "/broadcast/task/{id}",
  summary: "Push an assigned task to its bot again",
  item: z.object({ task_id: z.string(), bot_id: z.string(), delivered: z.boolean() }),
  errors: [401, 403, 404, 409],
  run: async (c, id) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const task = await loadOr404("task", id, getTask(ctx.db, id));
    if (!task.botId || !isHeld(task.status)) {
      throw new AppError("invalid_transition", `task ${id} is ${task.status} and held by no bot; assign it first`, {
        task_id: id,
        status: task.status,
      });
    }
    const delivered = await botSession(ctx.env, task.botId).taskAssigned(id);
    if (!delivered) throw new AppError("bot_not_connected", `bot ${task.botId} has no open control socket`, { bot_id: task.botId });
    return { task_id: id, bot_id: task.botId, delivered };
  },
});
