/**
 * Who is calling. Token kinds: admin (everything), viewer (read only), bot
 * (acts only as itself). `AUTH_MODE=open` turns auth off for local dev only.
 */
import { createMiddleware } from "hono/factory";
import { constantTimeEqual } from "./crypto/compare";
import { findActiveToken } from "./db/tokens";
import { AppError } from "./errors";
import type { AppContext, AppEnv } from "./http";

export type Principal =
  | { kind: "admin"; tokenId: string | null }
  | { kind: "viewer"; tokenId: string }
  | { kind: "bot"; tokenId: string; botId: string }
  | { kind: "open" };

let warnedOpen = false;

/** Reads `Authorization: Bearer`, or `?token=` on the bot WebSocket (a bot library may not set headers). */
function presentedToken(c: AppContext): string | null {
  const header = c.req.header("Authorization");
  if (header) {
    const match = /^Bearer\s+(\S+)$/i.exec(header.trim());
    if (!match) throw new AppError("unauthorized", "Authorization header must be 'Bearer <token>'");
    return match[1]!;
  }
  if (c.req.path.endsWith("/ws/control")) return c.req.query("token") ?? null;
  return null;
}

/** API paths with their own authentication (the setup script's callback token). */
const SELF_AUTHENTICATED = /^\/api\/v1\/deployments\/[^/]+\/callback$/;

export const authenticate = createMiddleware<AppEnv>(async (c, next) => {
  const ctx = c.get("ctx");
  if (SELF_AUTHENTICATED.test(c.req.path)) return next();
  if (ctx.config.authMode === "open") {
    if (!warnedOpen) {
      warnedOpen = true;
      ctx.log.warn("AUTH_MODE=open: the API accepts unauthenticated requests. Local development only.");
    }
    c.set("principal", { kind: "open" });
    return next();
  }
  const token = presentedToken(c);
  if (!token) throw new AppError("unauthorized", "missing API token (Authorization: Bearer <token>)");
  if (ctx.config.adminToken && constantTimeEqual(token, ctx.config.adminToken)) {
    c.set("principal", { kind: "admin", tokenId: null });
    return next();
  }
  const row = await findActiveToken(ctx.db, token);
  if (!row) throw new AppError("unauthorized", "invalid or revoked API token");
  if (row.kind === "bot" && row.botId) c.set("principal", { kind: "bot", tokenId: row.id, botId: row.botId });
  else if (row.kind === "viewer") c.set("principal", { kind: "viewer", tokenId: row.id });
  else c.set("principal", { kind: "admin", tokenId: row.id });
  return next();
});

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
