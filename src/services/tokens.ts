/** Revoking a token reaches the sockets it opened: they close at once, with a named code. */
import { listConnectedBotIds } from "../db/bots";
import type { TokenRow } from "../db/schema";
import { revokeToken } from "../db/tokens";
import { botSession } from "../objects/stubs";
import type { Ctx } from "./context";

/** `DELETE /tokens/{id}`: false if there is no such live token. */
export async function revokeEverywhere(ctx: Ctx, tokenId: string): Promise<boolean> {
  const row = await revokeToken(ctx.db, tokenId, ctx.now());
  if (!row) return false;
  await closeSocketsOf(ctx, row);
  ctx.log.info("token revoked", { token_id: tokenId, kind: row.kind, bot_id: row.botId });
  return true;
}

/**
 * A bot token can only have opened its own bot's socket; an admin token may
 * have opened any bot's, so every connected bot is asked (bounded by the
 * connected list; one unreachable bot does not stop the others). Viewers open none.
 */
export async function closeSocketsOf(ctx: Ctx, token: Pick<TokenRow, "id" | "kind" | "botId">): Promise<void> {
  const botIds =
    token.kind === "bot" ? (token.botId ? [token.botId] : []) : token.kind === "admin" ? await listConnectedBotIds(ctx.db) : [];
  for (const botId of botIds) {
    try {
      await botSession(ctx.env, botId).tokensRevoked([token.id]);
    } catch (err) {
      ctx.log.error("could not close a revoked token's socket", { bot_id: botId, token_id: token.id, error: String(err) });
    }
  }
}
