/** Revoking a token reaches the sockets it opened: they close at once, with a named code. */
import { connectedBotIdsAfter } from "../db/bots";
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

/** Connected bots asked per page when an admin token is revoked, and the most pages (100,000 bots). */
const REVOKE_PAGE = 500;
const REVOKE_MAX_PAGES = 200;

/**
 * A bot token can only have opened its own bot's socket; an admin token may
 * have opened any bot's, so every connected bot is asked, a page at a time
 * (bounded; one unreachable bot does not stop the others). Viewers open none.
 */
export async function closeSocketsOf(ctx: Ctx, token: Pick<TokenRow, "id" | "kind" | "botId">): Promise<void> {
  const tell = async (botIds: string[]) => {
    await Promise.all(
      botIds.map(async (botId) => {
        try {
          await botSession(ctx.env, botId).tokensRevoked([token.id]);
        } catch (err) {
          ctx.log.error("could not close a revoked token's socket", { bot_id: botId, token_id: token.id, error: String(err) });
        }
      }),
    );
  };
  if (token.kind === "bot") return token.botId ? tell([token.botId]) : undefined;
  if (token.kind !== "admin") return;
  let after = "";
  for (let page = 0; page < REVOKE_MAX_PAGES; page++) {
    const ids = await connectedBotIdsAfter(ctx.db, after, REVOKE_PAGE);
    await tell(ids);
    if (ids.length < REVOKE_PAGE) return;
    after = ids[ids.length - 1]!;
  }
  ctx.log.warn("admin token revoked: stopped asking connected bots after the page limit", { token_id: token.id, pages: REVOKE_MAX_PAGES });
}
