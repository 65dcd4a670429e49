/** `GET /metrics` — Prometheus text format, for an admin token or a dedicated `metrics` token. */
import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses } from "../contracts/common";
import { renderPrometheus } from "../core/metrics";
import { AppError } from "../errors";
import { createRouter } from "../http";
import { scrape } from "../services/metrics";

export const metricsRouter = createRouter();

metricsRouter.openapi(
  createRoute({
    method: "get",
    path: "/metrics",
    tags: ["Metrics"],
    summary: "Prometheus metrics: tasks, queue, dispatch latency and run time, bots, WebSockets, deployments, D1",
    description: "Text exposition format 0.0.4. Needs an admin token or a `metrics` token (POST /api/v1/tokens with kind metrics).",
    responses: {
      200: { description: "The metrics", content: { "text/plain": { schema: z.string() } } },
      ...errorResponses(401, 403),
    },
  }),
  async (c) => {
    const p = c.get("principal");
    if (p.kind !== "admin" && p.kind !== "open" && p.kind !== "metrics")
      throw new AppError("forbidden", "/metrics needs an admin or a metrics token");
    c.header("Cache-Control", "no-store");
    const text = c.text(renderPrometheus(await scrape(c.get("ctx"))), 200);
    text.headers.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    return text;
  },
);
