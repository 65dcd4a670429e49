/** Shared hono types and helpers for the Worker's routes. */
import { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Principal } from "./auth";
import { AppError } from "./errors";
import type { Ctx } from "./services/context";

export interface AppEnv {
  Bindings: Env;
  Variables: { requestId: string; ctx: Ctx; principal: Principal };
}

export type AppContext = Context<AppEnv>;

export type AppRouter = ReturnType<typeof createRouter>;

/** Every router uses this hook: a zod failure becomes our 400 envelope, never hono's default. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        throw new AppError("validation_failed", "request failed validation", {
          issues: result.error.issues.map((i) => ({ path: i.path.join("."), message: i.message, code: i.code })),
        });
      }
    },
  });
}

/** The create's idempotency key: header `Idempotency-Key` wins over the body's `idempotency_key`. */
export function idempotencyKey(c: AppContext, fromBody: string | undefined): string | undefined {
  const header = c.req.header("Idempotency-Key")?.trim();
  if (header && header.length > 200) throw new AppError("validation_failed", "Idempotency-Key is longer than 200 characters");
  return header || fromBody;
}

/** Sets the pagination headers DECISIONS asks for: `Link: <…>; rel="next"` and `X-Next-Cursor`. */
export function setNextCursor(c: AppContext, nextCursor: string | null, param = "cursor"): void {
  if (!nextCursor) return;
  const url = new URL(c.req.url);
  url.searchParams.set(param, nextCursor);
  c.header("Link", `<${url.pathname}${url.search}>; rel="next"`);
  c.header("X-Next-Cursor", nextCursor);
}

export const jsonBody = <T>(schema: T, description = "JSON body") => ({
  body: { required: true, content: { "application/json": { schema } }, description },
});

/** A JSON body the client may leave out (then the route sees `{}`: parse it with the schema for its defaults). */
export const optionalJsonBody = <T>(schema: T, description = "JSON body (optional)") => ({
  body: { required: false, content: { "application/json": { schema } }, description },
});

export const jsonResponse = <T>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
