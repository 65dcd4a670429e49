/** `GET /` (seed 001's JSON, or a redirect to the status page for browsers) and `GET /health`. */
import { createRoute, z } from "@hono/zod-openapi";
import { pingDatabase } from "../db/client";
import { createRouter, jsonResponse } from "../http";

export const SERVICE_NAME = "ClawBot Coordinator";
export const SERVICE_VERSION = "0.1.0";

export const healthRouter = createRouter();

healthRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags: ["Health"],
    summary: "Service identity (a browser asking for HTML is sent to the Status Center at /status)",
    responses: {
      200: jsonResponse(
        z.object({ service: z.string(), version: z.string(), status: z.string(), docs: z.string(), status_center: z.string() }),
        "Service info",
      ),
      302: { description: "To /status, for a request that accepts text/html" },
    },
  }),
  (c) => {
    // API clients keep seed 001's JSON; a browser (Accept: text/html first) goes to the page.
    if (/^\s*text\/html/i.test(c.req.header("Accept") ?? "")) return c.redirect("/status", 302) as never;
    return c.json({ service: SERVICE_NAME, version: SERVICE_VERSION, status: "running", docs: "/docs", status_center: "/status" }, 200);
  },
);

const Health = z.object({
  status: z.enum(["healthy", "unhealthy"]),
  version: z.string(),
  checks: z.object({ database: z.object({ status: z.enum(["ok", "error"]), latency_ms: z.number(), error: z.string().optional() }) }),
});

healthRouter.openapi(
  createRoute({
    method: "get",
    path: "/health",
    tags: ["Health"],
    summary: "Health, including a D1 round trip",
    responses: { 200: jsonResponse(Health, "Healthy"), 503: jsonResponse(Health, "A dependency is down") },
  }),
  async (c) => {
    const started = Date.now();
    try {
      await pingDatabase(c.get("ctx").db);
      return c.json(
        {
          status: "healthy" as const,
          version: SERVICE_VERSION,
          checks: { database: { status: "ok" as const, latency_ms: Date.now() - started } },
        },
        200,
      );
    } catch (err) {
      c.get("ctx").log.error("health check failed", { error: String(err) });
      return c.json(
        {
          status: "unhealthy" as const,
          version: SERVICE_VERSION,
          checks: { database: { status: "error" as const, latency_ms: Date.now() - started, error: "database unreachable" } },
        },
        503,
      );
    }
  },
);
