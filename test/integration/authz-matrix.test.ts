/**
 * Authorization matrix: every API endpoint × every kind of caller, from one
 * table. Each row says who may call the endpoint; the test derives what each
 * caller must get (401 without a valid token, 403 when the token may not do
 * it, anything else when it may) and checks that the table covers every
 * operation in /openapi.json, so a new endpoint without a row fails here.
 */
import { describe, expect, it } from "vitest";
import { BotSocket, call, del, get, post, registerBot, uniqueCapability } from "../helpers/api";

/**
 * Who may call: public (anyone), reader (admin, viewer; GET only), watcher (admin, viewer, any method: stream
 * tickets), admin, self (admin, or the bot the path or task is about), signed (only a signed URL: every token is refused).
 */
type Who = "public" | "reader" | "watcher" | "admin" | "self" | "selfReader" | "signed";
type Caller = "none" | "wrong" | "revoked" | "viewer" | "botOwn" | "botOther" | "admin";
const CALLERS: Caller[] = ["none", "wrong", "revoked", "viewer", "botOwn", "botOther", "admin"];

interface Row {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** The OpenAPI path. */
  path: string;
  who: Who;
  /** Placeholders: {bot} own bot, {task} a task the own bot holds, {missing} an id that does not exist. */
  url: string;
  body?: unknown;
}

const TABLE: Row[] = [
  { method: "GET", path: "/", who: "public", url: "/" },
  { method: "GET", path: "/health", who: "public", url: "/health" },
  { method: "GET", path: "/metrics", who: "admin", url: "/metrics" },
  { method: "POST", path: "/api/v1/bots", who: "admin", url: "/api/v1/bots", body: { name: "matrix" } },
  { method: "GET", path: "/api/v1/bots", who: "reader", url: "/api/v1/bots" },
  { method: "GET", path: "/api/v1/bots/available", who: "reader", url: "/api/v1/bots/available" },
  { method: "GET", path: "/api/v1/bots/{id}", who: "selfReader", url: "/api/v1/bots/{bot}" },
  { method: "POST", path: "/api/v1/bots/{id}/heartbeat", who: "self", url: "/api/v1/bots/{bot}/heartbeat" },
  { method: "POST", path: "/api/v1/bots/{id}/busy", who: "self", url: "/api/v1/bots/{bot}/busy" },
  { method: "POST", path: "/api/v1/bots/{id}/available", who: "self", url: "/api/v1/bots/{bot}/available" },
  { method: "POST", path: "/api/v1/bots/{id}/unquarantine", who: "admin", url: "/api/v1/bots/{missing}/unquarantine" },
  { method: "DELETE", path: "/api/v1/bots/{id}", who: "admin", url: "/api/v1/bots/{missing}" },
  { method: "POST", path: "/api/v1/tasks", who: "admin", url: "/api/v1/tasks", body: { payload: {}, capability: "matrix-none" } },
  {
    method: "POST",
    path: "/api/v1/tasks/batch",
    who: "admin",
    url: "/api/v1/tasks/batch",
    body: { tasks: [{ payload: {}, capability: "matrix-none" }] },
  },
  { method: "GET", path: "/api/v1/tasks", who: "reader", url: "/api/v1/tasks" },
  { method: "GET", path: "/api/v1/tasks/pending", who: "reader", url: "/api/v1/tasks/pending" },
  { method: "GET", path: "/api/v1/tasks/{id}", who: "selfReader", url: "/api/v1/tasks/{task}" },
  { method: "GET", path: "/api/v1/tasks/{id}/events", who: "reader", url: "/api/v1/tasks/{task}/events" },
  { method: "POST", path: "/api/v1/tasks/{id}/assign", who: "admin", url: "/api/v1/tasks/{missing}/assign", body: { bot_id: "x" } },
  { method: "POST", path: "/api/v1/tasks/{id}/start", who: "self", url: "/api/v1/tasks/{task}/start" },
  { method: "POST", path: "/api/v1/tasks/{id}/complete", who: "self", url: "/api/v1/tasks/{task}/complete", body: { result: 1 } },
  { method: "POST", path: "/api/v1/tasks/{id}/fail", who: "self", url: "/api/v1/tasks/{task}/fail", body: { error: "x" } },
  { method: "POST", path: "/api/v1/tasks/{id}/cancel", who: "admin", url: "/api/v1/tasks/{task}/cancel", body: {} },
  { method: "DELETE", path: "/api/v1/tasks/{id}", who: "admin", url: "/api/v1/tasks/{missing}" },
  { method: "POST", path: "/api/v1/workflows", who: "admin", url: "/api/v1/workflows", body: { name: "m", task_payloads: [{}] } },
  { method: "GET", path: "/api/v1/workflows", who: "reader", url: "/api/v1/workflows" },
  { method: "GET", path: "/api/v1/workflows/{id}", who: "reader", url: "/api/v1/workflows/{missing}" },
  { method: "GET", path: "/api/v1/workflows/{id}/tasks", who: "reader", url: "/api/v1/workflows/{missing}/tasks" },
  { method: "POST", path: "/api/v1/workflows/{id}/start", who: "admin", url: "/api/v1/workflows/{missing}/start" },
  { method: "DELETE", path: "/api/v1/workflows/{id}", who: "admin", url: "/api/v1/workflows/{missing}" },
  { method: "GET", path: "/api/v1/ws/control", who: "self", url: "/api/v1/ws/control?bot_id={bot}" },
  { method: "GET", path: "/api/v1/ws/connections", who: "reader", url: "/api/v1/ws/connections" },
  { method: "POST", path: "/api/v1/ws/broadcast/task/{id}", who: "admin", url: "/api/v1/ws/broadcast/task/{missing}" },
  { method: "POST", path: "/api/v1/tokens", who: "admin", url: "/api/v1/tokens", body: { kind: "viewer", name: "m" } },
  { method: "GET", path: "/api/v1/tokens", who: "admin", url: "/api/v1/tokens" },
  { method: "DELETE", path: "/api/v1/tokens/{id}", who: "admin", url: "/api/v1/tokens/{missing}" },
  { method: "POST", path: "/api/v1/deployments", who: "admin", url: "/api/v1/deployments", body: { name: "m", region: "nowhere" } },
  { method: "GET", path: "/api/v1/deployments", who: "reader", url: "/api/v1/deployments" },
  { method: "GET", path: "/api/v1/deployments/{id}", who: "reader", url: "/api/v1/deployments/{missing}" },
  { method: "GET", path: "/api/v1/deployments/{id}/logs", who: "reader", url: "/api/v1/deployments/{missing}/logs" },
  { method: "POST", path: "/api/v1/deployments/{id}/retry", who: "admin", url: "/api/v1/deployments/{missing}/retry" },
  { method: "POST", path: "/api/v1/deployments/{id}/cancel", who: "admin", url: "/api/v1/deployments/{missing}/cancel" },
  { method: "DELETE", path: "/api/v1/deployments/{id}", who: "admin", url: "/api/v1/deployments/{missing}" },
  { method: "GET", path: "/api/v1/deployments/{id}/events", who: "reader", url: "/api/v1/deployments/{missing}/events" },
  { method: "POST", path: "/api/v1/jobs", who: "admin", url: "/api/v1/jobs", body: { task: { capability: "matrix-none" } } },
  { method: "GET", path: "/api/v1/jobs", who: "reader", url: "/api/v1/jobs" },
  { method: "GET", path: "/api/v1/jobs/{id}", who: "reader", url: "/api/v1/jobs/{missing}" },
  { method: "GET", path: "/api/v1/jobs/{id}/result", who: "reader", url: "/api/v1/jobs/{missing}/result" },
  { method: "GET", path: "/api/v1/jobs/{id}/events", who: "reader", url: "/api/v1/jobs/{missing}/events" },
  { method: "POST", path: "/api/v1/jobs/{id}/execute", who: "admin", url: "/api/v1/jobs/{missing}/execute" },
  { method: "POST", path: "/api/v1/jobs/{id}/cancel", who: "admin", url: "/api/v1/jobs/{missing}/cancel" },
  { method: "POST", path: "/api/v1/workflows/{id}/execute", who: "admin", url: "/api/v1/workflows/{missing}/execute" },
  { method: "GET", path: "/api/v1/ws/jobs/{id}", who: "reader", url: "/api/v1/ws/jobs/{missing}" },
  { method: "GET", path: "/api/v1/ws/execution/{id}", who: "reader", url: "/api/v1/ws/execution/{missing}" },
  { method: "GET", path: "/api/v1/ws/projects/{id}", who: "reader", url: "/api/v1/ws/projects/{missing}" },
  { method: "GET", path: "/api/v1/ws/deployments/{id}", who: "reader", url: "/api/v1/ws/deployments/{missing}" },
  { method: "GET", path: "/api/v1/ws/fleet", who: "reader", url: "/api/v1/ws/fleet" },
  { method: "POST", path: "/api/v1/projects", who: "admin", url: "/api/v1/projects", body: { name: "m", domain: "m", typeId: 2 } },
  { method: "GET", path: "/api/v1/projects", who: "reader", url: "/api/v1/projects" },
  { method: "GET", path: "/api/v1/projects/{id}", who: "reader", url: "/api/v1/projects/{missing}" },
  { method: "GET", path: "/api/v1/projects/{id}/status", who: "reader", url: "/api/v1/projects/{missing}/status" },
  { method: "GET", path: "/api/v1/projects/{id}/events", who: "reader", url: "/api/v1/projects/{missing}/events" },
  { method: "POST", path: "/api/v1/projects/{id}/initialize", who: "admin", url: "/api/v1/projects/{missing}/initialize" },
  { method: "DELETE", path: "/api/v1/projects/{id}", who: "admin", url: "/api/v1/projects/{missing}" },
  { method: "GET", path: "/api/v1/project-types", who: "reader", url: "/api/v1/project-types" },
  { method: "GET", path: "/api/v1/rate-limits", who: "admin", url: "/api/v1/rate-limits" },
  { method: "PUT", path: "/api/v1/rate-limits/tokens/{id}", who: "admin", url: "/api/v1/rate-limits/tokens/{missing}", body: {} },
  { method: "DELETE", path: "/api/v1/rate-limits/tokens/{id}", who: "admin", url: "/api/v1/rate-limits/tokens/{missing}" },
  {
    method: "PUT",
    path: "/api/v1/rate-limits/capabilities/{capability}",
    who: "admin",
    url: "/api/v1/rate-limits/capabilities/{missing}",
    body: {},
  },
  {
    method: "DELETE",
    path: "/api/v1/rate-limits/capabilities/{capability}",
    who: "admin",
    url: "/api/v1/rate-limits/capabilities/{missing}",
  },
  { method: "POST", path: "/api/v1/schedules", who: "admin", url: "/api/v1/schedules", body: { name: "m", every_seconds: 3600, task: {} } },
  { method: "GET", path: "/api/v1/schedules", who: "reader", url: "/api/v1/schedules" },
  { method: "GET", path: "/api/v1/schedules/{id}", who: "reader", url: "/api/v1/schedules/{missing}" },
  { method: "POST", path: "/api/v1/schedules/{id}/pause", who: "admin", url: "/api/v1/schedules/{missing}/pause" },
  { method: "POST", path: "/api/v1/schedules/{id}/resume", who: "admin", url: "/api/v1/schedules/{missing}/resume" },
  { method: "POST", path: "/api/v1/schedules/{id}/trigger", who: "admin", url: "/api/v1/schedules/{missing}/trigger" },
  { method: "DELETE", path: "/api/v1/schedules/{id}", who: "admin", url: "/api/v1/schedules/{missing}" },
  { method: "POST", path: "/api/v1/artifacts", who: "admin", url: "/api/v1/artifacts?name=m.json", body: { m: 1 } },
  { method: "GET", path: "/api/v1/artifacts", who: "reader", url: "/api/v1/artifacts" },
  { method: "GET", path: "/api/v1/artifacts/{id}", who: "reader", url: "/api/v1/artifacts/{missing}" },
  { method: "GET", path: "/api/v1/artifacts/{id}/content", who: "reader", url: "/api/v1/artifacts/{missing}/content" },
  { method: "PUT", path: "/api/v1/artifacts/{id}/content", who: "signed", url: "/api/v1/artifacts/{missing}/content", body: { m: 1 } },
  { method: "DELETE", path: "/api/v1/artifacts/{id}", who: "admin", url: "/api/v1/artifacts/{missing}" },
  { method: "POST", path: "/api/v1/data/upload", who: "admin", url: "/api/v1/data/upload?name=m.json", body: { m: 1 } },
  { method: "GET", path: "/api/v1/data/{id}/download", who: "reader", url: "/api/v1/data/{missing}/download" },
  { method: "POST", path: "/api/v1/tasks/{id}/artifacts", who: "self", url: "/api/v1/tasks/{task}/artifacts", body: { name: "m.png" } },
  { method: "GET", path: "/api/v1/stats/throughput", who: "reader", url: "/api/v1/stats/throughput" },
  { method: "POST", path: "/api/v1/stream-tickets", who: "watcher", url: "/api/v1/stream-tickets", body: { resource: "fleet" } },
];

/** The deployment callback authenticates with its own per-launch token (tested in deployments.test.ts). */
const OWN_AUTH = new Set(["POST /api/v1/deployments/{id}/callback"]);

function expected(who: Who, caller: Caller, method: string): "allowed" | 401 | 403 {
  if (who === "public") return "allowed";
  if (caller === "none" || caller === "wrong" || caller === "revoked") return 401;
  if (who === "signed") return 403;
  if (caller === "admin") return "allowed";
  if (who === "watcher") return caller === "viewer" ? "allowed" : 403;
  const reads = who === "reader" || (who === "selfReader" && caller === "viewer");
  if (caller === "viewer") return reads && method === "GET" ? "allowed" : 403;
  if (caller === "botOwn") return who === "self" || who === "selfReader" ? "allowed" : 403;
  return 403; // another bot's token
}

describe("authorization matrix", () => {
  it("covers every operation in the OpenAPI document", async () => {
    const spec = (await get("/openapi.json", { token: null })).body;
    const documented = Object.entries(spec.paths).flatMap(([p, ops]) => Object.keys(ops as object).map((m) => `${m.toUpperCase()} ${p}`));
    const inTable = new Set(TABLE.map((r) => `${r.method} ${r.path}`));
    expect(documented.filter((op) => !inTable.has(op) && !OWN_AUTH.has(op))).toEqual([]);
  });

  it("every endpoint × no token, wrong token, revoked token, viewer, the bot itself, another bot, admin", async () => {
    const cap = uniqueCapability();
    const own = await registerBot([cap], "own");
    const other = await registerBot([cap], "other");
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "matrix" })).body.token as string;
    const revokedRow = (await post("/api/v1/tokens", { kind: "admin", name: "revoked" })).body;
    await del(`/api/v1/tokens/${revokedRow.id}`);
    const tokens: Record<Caller, string | null> = {
      none: null,
      wrong: "cbc_admin_not-a-real-token",
      revoked: revokedRow.token,
      viewer,
      botOwn: own.token,
      botOther: other.token,
      admin: undefined as unknown as string, // the helper's default: the admin token
    };
    const failures: string[] = [];
    for (const row of TABLE) {
      // A task held by the own bot for each row. The callers run in the table's order, so the first one that may
      // act on it (the bot itself) is the first to change it; later ones may meet a 409, which is still "allowed".
      await post(`/api/v1/bots/${own.id}/available`, undefined, { direct: true });
      // No bot has a socket: only the manual assign below places it.
      const task = (await post("/api/v1/tasks", { payload: {}, capability: cap }, { direct: true })).body;
      await post(`/api/v1/bots/${own.id}/heartbeat`, undefined, { token: own.token, direct: true });
      await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: own.id }, { direct: true });
      for (const caller of CALLERS) {
        const url = row.url.replace("{bot}", own.id).replace("{task}", task.id).replace("{missing}", `missing-${crypto.randomUUID()}`);
        let status: number;
        if (row.path === "/api/v1/ws/control") {
          const res = await BotSocket.upgrade(own.id, caller === "admin" ? "test-admin-token-0123456789abcdef" : tokens[caller]);
          status = res.status;
          if (res.webSocket) {
            res.webSocket.accept();
            res.webSocket.close(1000, "matrix");
          }
        } else {
          status = (await call(row.method, url, row.body, caller === "admin" ? { direct: true } : { token: tokens[caller], direct: true }))
            .status;
        }
        const want = expected(row.who, caller, row.method);
        const ok = want === "allowed" ? status !== 401 && status !== 403 && status < 500 : status === want;
        if (!ok) failures.push(`${row.method} ${row.path} as ${caller}: got ${status}, want ${want}`);
      }
      await del(`/api/v1/tasks/${task.id}`, { direct: true });
    }
    expect(failures).toEqual([]);
  }, 240_000);
});
