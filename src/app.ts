/** The Worker's HTTP surface: middleware, routers per resource, OpenAPI, errors. */

import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { authenticate } from "./auth";
import { jsonTooDeep, MAX_JSON_DEPTH } from "./contracts/json-depth";
import { MAX_MESSAGE_BYTES } from "./contracts/ws";
import { AppError, type ErrorCode, errorEnvelope } from "./errors";
import { BOT_BUNDLE, BOT_BUNDLE_SHA256 } from "./generated/bot-bundle";
import { type AppEnv, createRouter } from "./http";
import { artifactsRouter, dataRouter, STREAMING_UPLOAD, taskArtifactsRouter } from "./routes/artifacts";
import { benchRouter } from "./routes/bench";
import { botsRouter } from "./routes/bots";
import { deploymentsRouter } from "./routes/deployments";
import { DOCS_HTML } from "./routes/docs-page";
import { healthRouter, SERVICE_NAME, SERVICE_VERSION } from "./routes/health";
import { jobsRouter } from "./routes/jobs";
import { metricsRouter } from "./routes/metrics";
import { projectsRouter, projectTypesRouter } from "./routes/projects";
import { rateLimitsRouter } from "./routes/rate-limits";
import { schedulesRouter } from "./routes/schedules";
import { statsRouter } from "./routes/stats";
import { statusPageRouter } from "./routes/status-page";
import { streamsRouter, streamTicketsRouter } from "./routes/streams";
import { tasksRouter } from "./routes/tasks";
import { tokensRouter } from "./routes/tokens";
import { workflowsRouter } from "./routes/workflows";
import { wsRouter } from "./routes/ws";
import { createCtx } from "./services/context";
import { flushMetrics } from "./services/metrics";
import { limitRequest } from "./services/rate-limits";

export const MAX_BODY_BYTES = MAX_MESSAGE_BYTES;

/** Our codes for the statuses hono's own middleware throws. */
const HTTP_EXCEPTION_CODES: Partial<Record<number, ErrorCode>> = {
  413: "payload_too_large",
  415: "unsupported_media_type",
  500: "internal_error",
};

export function createApp() {
  const app = createRouter();

  app.use("*", async (c, next) => {
    const requestId = c.req.header("X-Request-Id")?.slice(0, 100) || crypto.randomUUID();
    const ctx = createCtx(c.env, { request_id: requestId });
    c.set("requestId", requestId);
    c.set("ctx", ctx);
    c.header("X-Request-Id", requestId);
    const started = Date.now();
    await next();
    // A response made by hand (not through `c`) lacks it. Only then: a header set after the response is made
    // makes hono copy the whole Response (measured at 4% of the coordinator's CPU under load when done always).
    if (!c.res.headers.has("X-Request-Id")) c.header("X-Request-Id", requestId);
    // What this request counted goes to the metrics store (at most once a second per isolate), after the response.
    const flush = flushMetrics(ctx);
    try {
      c.executionCtx.waitUntil(flush);
    } catch {
      await flush; // no execution context (a direct call in tests)
    }
    if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
      ctx.log.info("request", { method: c.req.method, path: c.req.path, status: c.res.status, duration_ms: Date.now() - started });
    }
  });

  const jsonLimit = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new AppError("payload_too_large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`, { max_bytes: MAX_BODY_BYTES });
    },
  });
  /** An artifact's bytes stream to R2 with their own limit (ARTIFACT_MAX_BYTES); every other body is JSON. */
  const isUpload = (c: { req: { method: string; path: string } }) =>
    (c.req.method === "POST" || c.req.method === "PUT") && STREAMING_UPLOAD.test(c.req.path);
  app.use("/api/v1/*", (c, next) => (isUpload(c) ? next() : jsonLimit(c, next)));
  app.use("/api/v1/*", authenticate);
  app.use("/metrics", authenticate);
  // After who is calling is known: a limited token's request rate (bots and the setup callback are never limited).
  const limitRequests = createMiddleware<AppEnv>(async (c, next) => {
    await limitRequest(c.get("ctx"), c.get("principal"));
    return next();
  });
  app.use("/api/v1/*", limitRequests);
  app.use("/metrics", limitRequests);
  app.use("/api/v1/*", async (c, next) => {
    if (isUpload(c)) return next();
    // Parse JSON bodies once, up front, so malformed JSON is its own clear error (hono caches the result).
    if (c.req.method === "POST" || c.req.method === "PUT" || c.req.method === "PATCH") {
      const length = c.req.header("Content-Length");
      const hasBody = length ? Number(length) > 0 : c.req.raw.body !== null;
      if (hasBody) {
        const type = c.req.header("Content-Type") ?? "";
        if (!/^application\/([\w.+-]*\+)?json\b/i.test(type)) {
          throw new AppError("unsupported_media_type", "send JSON with 'Content-Type: application/json'", { content_type: type || null });
        }
        if (jsonTooDeep(await c.req.text())) {
          throw new AppError("validation_failed", `JSON nested deeper than ${MAX_JSON_DEPTH} levels`, { max_depth: MAX_JSON_DEPTH });
        }
        try {
          await c.req.json();
        } catch {
          throw new AppError("invalid_json", "request body is not valid JSON");
        }
      }
    }
    await next();
  });

  app.route("/", healthRouter);
  app.route("/", metricsRouter);
  app.route("/", statusPageRouter);
  app.route("/api/v1/bots", botsRouter);
  app.route("/api/v1/tasks", tasksRouter);
  app.route("/api/v1/tasks", taskArtifactsRouter);
  app.route("/api/v1/artifacts", artifactsRouter);
  app.route("/api/v1/data", dataRouter);
  app.route("/api/v1/workflows", workflowsRouter);
  app.route("/api/v1/jobs", jobsRouter);
  app.route("/api/v1/schedules", schedulesRouter);
  app.route("/api/v1/rate-limits", rateLimitsRouter);
  app.route("/api/v1/projects", projectsRouter);
  app.route("/api/v1/project-types", projectTypesRouter);
  app.route("/api/v1/ws", wsRouter);
  app.route("/api/v1/ws", streamsRouter);
  app.route("/api/v1/stream-tickets", streamTicketsRouter);
  app.route("/api/v1/tokens", tokensRouter);
  app.route("/api/v1/deployments", deploymentsRouter);
  app.route("/api/v1/stats", statsRouter);
  app.route("/api/v1/_bench", benchRouter);

  // The bot client, one bundled file, for VPS setup scripts to download (public: it holds no secret).
  app.get("/bot/clawbot-bot.cjs", (c) => {
    c.header("Content-Type", "application/javascript; charset=utf-8");
    c.header("ETag", `"${BOT_BUNDLE_SHA256}"`);
    return c.body(BOT_BUNDLE);
  });

  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: SERVICE_NAME,
      version: SERVICE_VERSION,
      description:
        "Coordinates a fleet of OpenClaw bots: bots, tasks, workflows and the bot control WebSocket. Send `Authorization: Bearer <token>`.",
    },
    security: [{ bearer: [] }],
  });
  app.get("/docs", (c) => c.html(DOCS_HTML));

  app.notFound((c) => c.json(errorEnvelope("not_found", `no route for ${c.req.method} ${c.req.path}`, {}, c.get("requestId")), 404));

  app.onError((err, c) => {
    const requestId = c.get("requestId");
    if (err instanceof AppError) {
      // A 416 says how big the resource is (RFC 9110 §15.5.17).
      if (err.code === "range_not_satisfiable") c.header("Content-Range", `bytes */${err.details.size}`);
      if (err.code === "rate_limited") c.header("Retry-After", String(err.details.retry_after_s));
      return c.json(errorEnvelope(err.code, err.message, err.details, requestId), err.status);
    }
    if (err instanceof HTTPException) {
      // hono's own validators: malformed JSON bodies and the like are the client's fault.
      const status = Math.min(err.status, 500) as ContentfulStatusCode;
      const code: ErrorCode =
        status === 400 && /json/i.test(err.message) ? "invalid_json" : (HTTP_EXCEPTION_CODES[status] ?? "bad_request");
      return c.json(errorEnvelope(code, err.message || "bad request", {}, requestId), status);
    }
    c.get("ctx")?.log.error("unhandled error", { error: String(err), stack: (err as Error)?.stack, path: c.req.path });
    return c.json(errorEnvelope("internal_error", "something went wrong on our side", {}, requestId), 500);
  });

  return app;
}
