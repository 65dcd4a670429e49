/** `GET /metrics`: what a Prometheus scrape sees after real work, who may scrape, and that the counts live in the store. */
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { ADMIN_TOKEN, BotSocket, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

async function scrape(token: string | null = ADMIN_TOKEN) {
  const res = await SELF.fetch("http://coordinator.test/metrics", { headers: token ? { Authorization: `Bearer ${token}` } : {} });
  return { status: res.status, type: res.headers.get("Content-Type"), text: await res.text() };
}

/** The value of one series in a scrape (0 when it is not there). */
function seriesValue(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

describe("metrics", () => {
  it("counts tasks created, completed, failed and retried by capability, with run time and dispatch latency; gauges read at scrape", async () => {
    const cap = uniqueCapability("metrics");
    const bot = await registerBot([cap], "metrics-bot");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const run = async (body: Record<string, unknown>, success: boolean) => {
      const task = (await post("/api/v1/tasks", { capability: cap, ...body })).body;
      expect((await sock.next("task_assigned")).payload.task_id).toBe(task.id);
      sock.send({ type: "task_started", payload: { task_id: task.id } });
      await sock.next("task_ack");
      return (await sock.complete(task.id, { ok: success }, success)).payload.status;
    };
    expect(await run({}, true)).toBe("completed");
    expect(await run({}, true)).toBe("completed");
    expect(await run({ max_attempts: 1 }, false)).toBe("failed");
    expect(await run({ max_attempts: 2 }, false)).toBe("pending"); // retried; it comes back after its backoff
    await sock.next("task_assigned", 5000);
    // A queue for a capability nobody has.
    const waiting = uniqueCapability("waiting");
    await post("/api/v1/tasks", { capability: waiting });

    const { status, type, text } = await scrape();
    expect(status).toBe(200);
    expect(type).toBe("text/plain; version=0.0.4; charset=utf-8");
    const c = `capability="${cap}"`;
    expect(seriesValue(text, `clawbot_tasks_created_total{${c}}`)).toBe(4);
    expect(seriesValue(text, `clawbot_tasks_completed_total{${c}}`)).toBe(2);
    expect(seriesValue(text, `clawbot_tasks_failed_total{${c},error_code="bot_error"}`)).toBe(1);
    expect(seriesValue(text, `clawbot_tasks_retried_total{${c},error_code="bot_error"}`)).toBe(1);
    expect(seriesValue(text, `clawbot_task_run_seconds_count{${c}}`)).toBe(2);
    expect(seriesValue(text, `clawbot_task_run_seconds_bucket{${c},le="+Inf"}`)).toBe(2);
    expect(seriesValue(text, `clawbot_task_dispatch_latency_seconds_count{${c}}`)).toBe(5); // 4 tasks, one of them twice
    expect(seriesValue(text, `clawbot_queue_depth{capability="${waiting}"}`)).toBe(1);
    expect(text).toMatch(new RegExp(`clawbot_queue_oldest_pending_age_seconds\\{capability="${waiting}"\\} \\d+`));
    expect(seriesValue(text, 'clawbot_bots{status="busy"}')).toBeGreaterThanOrEqual(1);
    expect(seriesValue(text, "clawbot_websocket_connects_total")).toBeGreaterThanOrEqual(1);
    const roundTrips = seriesValue(text, "clawbot_d1_round_trips_total");
    expect(roundTrips).toBeGreaterThan(0);
    expect(seriesValue(text, "clawbot_d1_statements_total")).toBeGreaterThanOrEqual(roundTrips);
    expect(text).toContain("# TYPE clawbot_deployments gauge");

    // The counts are the store's (a Durable Object's SQLite), not this isolate's memory.
    const stored = await env.METRICS.getByName("global").read();
    expect(stored.find((s) => s.name === "clawbot_tasks_completed_total" && s.labels.capability === cap)?.value).toBe(2);
    sock.close();
  });

  it("an admin or a metrics token may scrape; a metrics token reads nothing else; viewers and bots may not scrape", async () => {
    const metricsToken = (await post("/api/v1/tokens", { kind: "metrics", name: "prometheus" })).body.token;
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "v" })).body.token;
    const bot = await registerBot([], "scraper-bot");
    expect((await scrape(metricsToken)).status).toBe(200);
    expectError(await get("/api/v1/bots", { token: metricsToken }), 403, "forbidden");
    expectError(await post("/api/v1/tasks", { capability: "x" }, { token: metricsToken }), 403, "forbidden");
    expect((await scrape(viewer)).status).toBe(403);
    expect((await scrape(bot.token)).status).toBe(403);
    expect((await scrape(null)).status).toBe(401);
    expect((await scrape("wrong")).status).toBe(401);
    expectError(await post("/api/v1/tokens", { kind: "root", name: "x" }), 400, "validation_failed");
  });
});
