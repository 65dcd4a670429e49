/**
 * Property-based fuzzing driven by the OpenAPI document (fast-check, seeded and
 * bounded): generated bodies, query strings, headers and path ids against every
 * operation, and generated WebSocket frames against a bot's socket, with and
 * without each kind of token. Properties: never a 5xx; every refusal is the
 * error envelope; a refused request changes nothing.
 */
import { env } from "cloudflare:test";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, BotSocket, directFetch, get, post, registerBot, uniqueCapability } from "../helpers/api";

const SEED = 20261125;
const HTTP_RUNS = Number(process.env.FUZZ_RUNS ?? 4000);
const WS_RUNS = Number(process.env.FUZZ_WS_RUNS ?? 500);

interface Operation {
  method: string;
  path: string;
  /** Field names the request body's schema knows (bodies mix them with noise). */
  fields: string[];
}

async function operations(): Promise<Operation[]> {
  const spec = (await get("/openapi.json", { token: null })).body;
  const ops: Operation[] = [];
  for (const [path, byMethod] of Object.entries(spec.paths as Record<string, Record<string, any>>)) {
    for (const [method, op] of Object.entries(byMethod)) {
      if (path === "/api/v1/ws/control") continue; // the upgrade: fuzzed through frames below
      let schema = op.requestBody?.content?.["application/json"]?.schema;
      if (schema?.$ref) schema = spec.components.schemas[schema.$ref.split("/").pop()];
      ops.push({ method: method.toUpperCase(), path, fields: Object.keys(schema?.properties ?? {}) });
    }
  }
  return ops;
}

/** What must not change when a request is refused: every table's row count and the last event. */
async function fingerprint(): Promise<string> {
  const rows = await env.DB.prepare(
    `SELECT (SELECT count(*) FROM bots) b, (SELECT count(*) FROM tasks) t, (SELECT count(*) FROM workflows) w,
            (SELECT count(*) FROM tokens WHERE revoked_at IS NULL) k, (SELECT count(*) FROM deployments) d,
            (SELECT count(*) FROM jobs) j, (SELECT count(*) FROM projects) p,
            (SELECT count(*) FROM artifacts) a, (SELECT count(*) FROM schedules) sc, (SELECT count(*) FROM rate_limits) rl, (SELECT max(id) FROM events) e, (SELECT group_concat(status) FROM tasks) s`,
  ).first();
  const stored = (await env.ARTIFACTS.list({ prefix: "artifacts/" })).objects.length;
  return JSON.stringify({ ...rows, stored });
}

const jsonish = fc.jsonValue({ maxDepth: 4 });

/** One request straight into the Worker's fetch handler (see directFetch: SELF.fetch slows with every request). */
async function direct(method: string, url: string, headers: Record<string, string>, body: string | undefined) {
  const res = await directFetch(new Request(`http://coordinator.test${url}`, { method, headers, body }));
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json, requestId: res.headers.get("X-Request-Id") };
}

describe("fuzzing from the OpenAPI document", () => {
  it("HTTP: no 5xx, the error envelope on every refusal, no change after a refusal", async () => {
    const ops = await operations();
    expect(ops.length).toBeGreaterThan(30);
    const bot = await registerBot([uniqueCapability()], "fuzz");
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "fuzz" })).body.token as string;
    const task = (await post("/api/v1/tasks", { payload: {}, capability: uniqueCapability() })).body;
    const tokens = [null, ADMIN_TOKEN, viewer, bot.token, "cbc_admin_forged", "Bearer-less"];
    let cases = 0;
    const failures: string[] = [];

    const request = fc.record({
      op: fc.constantFrom(...ops),
      token: fc.constantFrom(...tokens),
      id: fc.oneof(fc.constantFrom(bot.id, task.id, "x", ""), fc.string({ maxLength: 120 })),
      query: fc.dictionary(
        fc.constantFrom("limit", "cursor", "status", "capability", "bot_id", "after", "since", "x"),
        fc.string({ maxLength: 40 }),
        {
          maxKeys: 3,
        },
      ),
      body: fc.option(
        fc.oneof(
          jsonish.map((v) => JSON.stringify(v)),
          fc.string({ maxLength: 200 }),
          fc.constant("{"),
          fc.constant(`{"a":${"[".repeat(200)}${"]".repeat(200)}}`),
        ),
        { nil: undefined },
      ),
      fieldsBody: fc.dictionary(fc.string({ maxLength: 12 }), jsonish, { maxKeys: 4 }),
      useFields: fc.boolean(),
      contentType: fc.constantFrom("application/json", "text/plain", "application/json; charset=utf-8", ""),
      idempotencyKey: fc.option(fc.string({ maxLength: 250 }), { nil: undefined }),
    });

    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        cases++;
        const path = r.op.path.replace("{id}", encodeURIComponent(r.id) || "%20");
        const query = new URLSearchParams(r.query).toString();
        const url = `${path}${query ? `?${query}` : ""}`;
        // Bodies either follow the schema's field names (with generated values) or are free-form text.
        const fieldBody =
          r.useFields && r.op.fields.length
            ? JSON.stringify(Object.fromEntries(r.op.fields.map((f, i) => [f, Object.values(r.fieldsBody)[i] ?? null])))
            : undefined;
        const rawBody = r.op.method === "GET" ? undefined : (fieldBody ?? r.body);
        const headers: Record<string, string> = {};
        if (rawBody !== undefined && r.contentType) headers["Content-Type"] = r.contentType;
        if (r.idempotencyKey !== undefined) headers["Idempotency-Key"] = r.idempotencyKey.replace(/[^\x20-\x7e]/g, "");
        if (r.token === "Bearer-less") headers.Authorization = "Token abc";
        else if (r.token) headers.Authorization = `Bearer ${r.token}`;
        const before = await fingerprint();
        const res = await direct(r.op.method, url, headers, rawBody);
        if (!res.requestId) failures.push(`${r.op.method} ${url}: no X-Request-Id`);
        const where = `${r.op.method} ${url} as ${r.token?.slice(0, 12) ?? "nobody"} → ${res.status}`;
        // A deployment the fuzzer managed to start is stopped at once: provisioning in the background would slow every later case.
        if (res.status === 202 && r.op.path === "/api/v1/deployments") await post(`/api/v1/deployments/${res.body.id}/cancel`);
        if (res.status >= 500) failures.push(`${where}: ${JSON.stringify(res.body).slice(0, 200)}`);
        if (res.status >= 400) {
          const e = res.body?.error;
          if (!(e && typeof e.code === "string" && typeof e.message === "string" && typeof e.details === "object" && e.request_id)) {
            failures.push(`${where}: not the error envelope: ${JSON.stringify(res.body).slice(0, 200)}`);
          }
          if ((await fingerprint()) !== before) failures.push(`${where}: refused, but the stored state changed`);
        }
        return failures.length === 0;
      }),
      { seed: SEED, numRuns: HTTP_RUNS, endOnFailure: true },
    );
    console.log(`fuzz: ${cases} HTTP cases over ${ops.length} operations (seed ${SEED})`);
    expect(failures).toEqual([]);
  }, 110_000);

  it("WebSocket: every generated frame is answered (never internal_error) and the socket stays open", async () => {
    const cap = uniqueCapability();
    const bot = await registerBot([cap], "fuzz-ws");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const held = (await post("/api/v1/tasks", { payload: {}, capability: cap })).body;
    await sock.next("task_assigned");
    let cases = 0;
    const frame = fc.oneof(
      fc.string({ maxLength: 300 }),
      jsonish.map((v) => JSON.stringify(v)),
      fc
        .record({
          type: fc.constantFrom("task_started", "task_progress", "task_complete", "heartbeat", "nope", ""),
          payload: fc.oneof(
            jsonish,
            fc.record({
              task_id: fc.oneof(fc.constant(held.id), fc.string({ maxLength: 120 })),
              progress: fc.oneof(fc.double(), fc.integer(), fc.string()),
              success: fc.oneof(fc.boolean(), fc.string()),
              result: jsonish,
              error: fc.oneof(fc.string({ maxLength: 50 }), fc.integer()),
            }),
          ),
        })
        .map((m) => JSON.stringify(m)),
    );
    await fc.assert(
      fc.asyncProperty(frame, async (text) => {
        cases++;
        if (text === '{"type":"heartbeat"}') return true; // answered by the runtime
        sock.send(text);
        await sock.sync(); // the answer to this frame (if any) came before the probe's
        return sock.closed === null && !sock.log.some((m) => m.type === "error" && m.payload?.code === "internal_error");
      }),
      { seed: SEED, numRuns: WS_RUNS },
    );
    console.log(`fuzz: ${cases} WebSocket frames (seed ${SEED})`);
    expect(sock.closed).toBeNull();
    sock.close();
  }, 60_000);
});
