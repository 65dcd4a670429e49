import { SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DEPLOYMENT_STAGES } from "../../src/core/deployment-machine";
import { expectError, get } from "../helpers/api";

describe("service surface", () => {
  it("GET / keeps seed 001's JSON; /health checks D1", async () => {
    const root = await get("/", { token: null });
    expect(root.body).toMatchObject({ service: "ClawBot Coordinator", status: "running", status_center: "/status" });
    // A browser is sent to the Status Center; API clients (any other Accept) keep the JSON.
    const browser = await SELF.fetch("http://coordinator.test/", {
      headers: { Accept: "text/html,application/xhtml+xml,*/*;q=0.8" },
      redirect: "manual",
    });
    expect(browser.status).toBe(302);
    expect(browser.headers.get("Location")).toBe("/status");
    expect((await get("/", { token: null, headers: { Accept: "application/json" } })).status).toBe(200);
    // The page and its files, served by the Worker with a strict CSP and ETags; they hold no secret (no token needed).
    const page = await SELF.fetch("http://coordinator.test/status");
    expect(page.status).toBe(200);
    expect(page.headers.get("Content-Type")).toContain("text/html");
    expect(page.headers.get("Content-Security-Policy")).toContain("script-src 'self'");
    expect(await page.text()).toContain('<script type="module" src="/assets/status.js">');
    const script = await SELF.fetch("http://coordinator.test/assets/status.js");
    expect(script.headers.get("Content-Type")).toContain("text/javascript");
    const again = await SELF.fetch("http://coordinator.test/assets/status.js", {
      headers: { "If-None-Match": script.headers.get("ETag")! },
    });
    expect(again.status).toBe(304);
    // The modules it imports; the stage order comes from the Worker's own list, not a copy.
    expect((await SELF.fetch("http://coordinator.test/assets/status-api.js")).status).toBe(200);
    const config = await SELF.fetch("http://coordinator.test/assets/status-config.js");
    expect(config.headers.get("Content-Type")).toContain("text/javascript");
    expect(await config.text()).toBe(`export const DEPLOYMENT_STAGES = ${JSON.stringify(DEPLOYMENT_STAGES)};\n`);
    expect(config.headers.get("ETag")).toMatch(/^"config-[0-9a-f]+"$/);
    const health = await get("/health", { token: null });
    expect(health.body).toMatchObject({ status: "healthy", checks: { database: { status: "ok" } } });
    expect(health.headers.get("X-Request-Id")).toBeTruthy();
  });

  it("serves an OpenAPI 3.1 document generated from the zod schemas", async () => {
    const spec = (await get("/openapi.json", { token: null })).body;
    expect(spec.openapi).toBe("3.1.0");
    for (const path of [
      "/api/v1/bots",
      "/api/v1/bots/available",
      "/api/v1/bots/{id}",
      "/api/v1/bots/{id}/heartbeat",
      "/api/v1/bots/{id}/busy",
      "/api/v1/bots/{id}/available",
      "/api/v1/tasks",
      "/api/v1/tasks/pending",
      "/api/v1/tasks/{id}/assign",
      "/api/v1/tasks/{id}/start",
      "/api/v1/tasks/{id}/complete",
      "/api/v1/tasks/{id}/fail",
      "/api/v1/tasks/{id}/cancel",
      "/api/v1/workflows",
      "/api/v1/workflows/{id}/tasks",
      "/api/v1/workflows/{id}/start",
      "/api/v1/ws/control",
      "/api/v1/ws/connections",
      "/api/v1/ws/broadcast/task/{id}",
      "/health",
      "/api/v1/deployments",
      "/api/v1/deployments/{id}",
      "/api/v1/deployments/{id}/logs",
      "/api/v1/deployments/{id}/retry",
      "/api/v1/deployments/{id}/cancel",
      "/api/v1/deployments/{id}/callback",
      "/api/v1/tokens",
      "/api/v1/artifacts",
      "/api/v1/artifacts/{id}",
      "/api/v1/artifacts/{id}/content",
      "/api/v1/tasks/{id}/artifacts",
      "/api/v1/data/upload",
      "/api/v1/data/{id}/download",
      "/api/v1/stats/throughput",
    ]) {
      expect(spec.paths[path], path).toBeDefined();
    }
    // An upload's body is any bytes (streamed; not a JSON schema the router would validate and buffer).
    expect(Object.keys(spec.paths["/api/v1/artifacts"].post.requestBody.content)).toEqual(["*/*"]);
    expect(spec.paths["/api/v1/artifacts/{id}/content"].get.responses["206"]).toBeDefined();
    expect(spec.components.schemas.TaskCreate.properties.timeout_seconds).toMatchObject({ minimum: 1, maximum: 3600 });
  });

  it("serves an interactive docs page with no external assets", async () => {
    const res = await get("/docs", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toContain("text/html");
    expect(res.body).toContain("/openapi.json");
    expect(res.body).not.toMatch(/<script[^>]+src=|<link[^>]+href="http|https?:\/\/(?!localhost)/);
  });

  it("serves the bundled bot client for setup scripts", async () => {
    const res = await get("/bot/clawbot-bot.cjs", { token: null });
    expect(res.status).toBe(200);
    expect(res.headers.get("Content-Type")).toContain("javascript");
    expect(res.headers.get("ETag")).toMatch(/^"[0-9a-f]{64}"$/);
    expect(String(res.body)).toContain("clawbot-bot");
  });

  it("unknown routes and methods get the JSON envelope", async () => {
    expectError(await get("/api/v1/nothing"), 404, "not_found");
    expectError(await get("/nowhere", { token: null }), 404, "not_found");
  });

  it("the WebSocket endpoint explains itself to plain HTTP", async () => {
    expectError(await get("/api/v1/ws/control?bot_id=x"), 426, "upgrade_required");
  });
});
