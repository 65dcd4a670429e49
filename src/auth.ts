/**
 * Who is calling. Token kinds: admin (everything), viewer (read only), bot
 * (acts only as itself). `AUTH_MODE=open` turns auth off for local dev only.
 */
import { createMiddleware } from "hono/factory";
import { constantTimeEqual } from "./crypto/compare";
import { findActiveToken } from "./db/tokens";
import { AppError } from "./errors";
import type { AppContext, AppEnv } from "./http";

/** A token's own rate limits (null: the variables' defaults apply). */
export type TokenLimits = { requestsPerSecond: number | null; burst: number | null; tasksPerMinute: number | null } | null;

export type Principal =
  | { kind: "admin"; tokenId: string | null; limits?: TokenLimits }
  | { kind: "viewer"; tokenId: string; limits?: TokenLimits }
  | { kind: "bot"; tokenId: string; botId: string }
  /** Reads `/metrics` and nothing else (for a Prometheus scraper). */
  | { kind: "metrics"; tokenId: string; limits?: TokenLimits }
  | { kind: "open" };

let warnedOpen = false;

/** Tokens shorter than this are refused as `ADMIN_TOKEN`: it guards everything. */
export const MIN_ADMIN_TOKEN_LENGTH = 32;

/**
 * Reads `Authorization: Bearer`, or `?token=` on the bot WebSocket (a bot
 * library may not set headers). A token in a URL ends up in logs and
 * histories, so it is accepted only there and only as a bot's own token.
 */
function presentedToken(c: AppContext): { token: string; inUrl: boolean } | null {
  const header = c.req.header("Authorization");
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (!match) throw new AppError("unauthorized", "Authorization header must be 'Bearer <token>'");
    return { token: match[1]!, inUrl: false };
  }
  const query = c.req.path === "/api/v1/ws/control" ? c.req.query("token") : undefined;
  return query ? { token: query, inUrl: true } : null;
}

/** API paths with their own authentication (the setup script's callback token). */
const SELF_AUTHENTICATED = /^\/api\/v1\/deployments\/[^/]+\/callback$/;

/** Stream paths a single-use `?ticket=` may open instead of a token (routes/streams.ts checks the ticket). */
export const TICKET_PATHS =
  /^\/api\/v1\/(ws\/(jobs|execution|projects|deployments)\/[^/]+|ws\/fleet|(jobs|projects|deployments)\/[^/]+\/events)$/;

/** An artifact's content with a signed URL (`?signature=`): routes/artifacts.ts checks the signature. */
const SIGNED_PATHS = /^\/api\/v1\/artifacts\/[^/]+\/content$/;

export const authenticate = createMiddleware<AppEnv>(async (c, next) => {
  const ctx = c.get("ctx");
  if (SELF_AUTHENTICATED.test(c.req.path)) return next();
  if (c.req.query("signature") !== undefined && !c.req.header("Authorization") && SIGNED_PATHS.test(c.req.path)) return next();
  if (c.req.query("ticket") !== undefined && !c.req.header("Authorization") && TICKET_PATHS.test(c.req.path)) return next();
  if (ctx.config.authMode === "open") {
    if (!warnedOpen) {
      warnedOpen = true;
      ctx.log.warn("AUTH_MODE=open: the API accepts unauthenticated requests. Local development only.");
    }
    c.set("principal", { kind: "open" });
    return next();
  }
  if (ctx.config.adminToken && ctx.config.adminToken.length < MIN_ADMIN_TOKEN_LENGTH) {
    ctx.log.error(`ADMIN_TOKEN is shorter than ${MIN_ADMIN_TOKEN_LENGTH} characters; refusing every request until it is replaced`);
    throw new AppError(
      "service_unavailable",
      `the coordinator is misconfigured: ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_LENGTH} characters`,
    );
  }
  const presented = presentedToken(c);
  if (!presented) throw new AppError("unauthorized", "missing API token (Authorization: Bearer <token>)");
  const principal = await principalOf(ctx, presented.token);
  // Fail closed: an unknown token, a token row of no known kind, and any non-bot token in a URL are refused.
  if (!principal) throw new AppError("unauthorized", "invalid or revoked API token");
  if (presented.inUrl && principal.kind !== "bot") throw new AppError("unauthorized", "only a bot's own token may be sent as ?token=");
  c.set("principal", principal);
  return next();
});

async function principalOf(ctx: AppContext["var"]["ctx"], token: string): Promise<Principal | null> {
  if (ctx.config.adminToken && constantTimeEqual(token, ctx.config.adminToken)) return { kind: "admin", tokenId: null };
  const row = await findActiveToken(ctx.db, token);
  switch (row?.kind) {
    case "admin":
      return { kind: "admin", tokenId: row.id, limits: row.limits };
    case "viewer":
      return { kind: "viewer", tokenId: row.id, limits: row.limits };
    case "bot":
      return row.botId ? { kind: "bot", tokenId: row.id, botId: row.botId } : null;
    case "metrics":
      return { kind: "metrics", tokenId: row.id, limits: row.limits };
    default:
      return null;
  }
}

const isAdmin = (p: Principal) => p.kind === "admin" || p.kind === "open";

/** Admin only (creates, deletes, operator actions). */
export function requireAdmin(c: AppContext): void {
  if (!isAdmin(c.get("principal"))) throw new AppError("forbidden", "this action needs an admin token");
}

/** Any authenticated reader: admin, viewer; bots only where `botId` is themselves. */
export function requireReader(c: AppContext, ownBotId?: string): void {
  const p = c.get("principal");
  if (isAdmin(p) || p.kind === "viewer") return;
  if (p.kind === "bot" && ownBotId !== undefined && p.botId === ownBotId) return;
  throw new AppError("forbidden", "this token may not read this resource");
}

/** Admin, or the bot itself. Returns the acting bot id when a bot token is used. */
export function requireAdminOrBot(c: AppContext, botId: string | null): string | undefined {
  const p = c.get("principal");
  if (isAdmin(p)) return undefined;
  if (p.kind === "bot" && botId !== null && p.botId === botId) return p.botId;
  throw new AppError("forbidden", p.kind === "bot" ? "a bot token acts only as its own bot" : "this action needs an admin token");
}
