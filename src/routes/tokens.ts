/** /api/v1/tokens — admin creates, lists and revokes API tokens (shown once, stored hashed). */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin } from "../auth";
import { errorResponses } from "../contracts/common";
import { insertToken, listTokens, mintToken } from "../db/tokens";
import { notFound } from "../errors";
import { createRouter, jsonBody, jsonResponse } from "../http";
import { tokenJson } from "../presenters";
import { revokeEverywhere } from "../services/tokens";
import { resourceRoutes } from "./resource-routes";

const tags = ["Tokens"];
export const tokensRouter = createRouter();

const TokenCreate = z
  .object({ kind: z.enum(["admin", "viewer", "metrics"]), name: z.string().trim().min(1).max(200) })
  .openapi("TokenCreate");
const Token = z
  .object({
    id: z.string(),
    kind: z.string(),
    name: z.string(),
    bot_id: z.string().nullable(),
    created_at: z.string(),
    revoked_at: z.string().nullable(),
  })
  .openapi("Token");

tokensRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Create an admin, a read-only viewer, or a metrics token (it reads /metrics only; shown once)",
    request: jsonBody(TokenCreate),
    responses: { 201: jsonResponse(Token.extend({ token: z.string() }), "Created"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { kind, name } = c.req.valid("json");
    const { secret, row } = await mintToken(kind, name, null, ctx.now());
    await insertToken(ctx.db, row);
    ctx.log.info("token created", { token_id: row.id, kind });
    return c.json({ ...tokenJson({ ...row, botId: null, revokedAt: null }), token: secret }, 201);
  },
);

tokensRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "List tokens (never their secrets)",
    responses: { 200: jsonResponse(z.array(Token), "Tokens"), ...errorResponses(401, 403) },
  }),
  async (c) => {
    requireAdmin(c);
    const rows = await listTokens(c.get("ctx").db);
    return c.json(rows.map(tokenJson), 200);
  },
);

resourceRoutes(tokensRouter, tags).act({
  method: "delete",
  path: "/{id}",
  summary: "Revoke a token",
  item: z.object({ id: z.string(), revoked: z.boolean() }),
  errors: [401, 403, 404],
  run: async (c, id) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    if (!(await revokeEverywhere(ctx, id))) throw notFound("token", id);
    return { id, revoked: true };
  },
});
