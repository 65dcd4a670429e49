/**
 * Bot health: a bot that keeps failing is quarantined (no work offered, an
 * event, shown on the bot), recovers as its window slides (a controllable
 * clock: `checkHealth(nowMs)` is what its alarm runs), or is cleared by an
 * admin; dispatch prefers the healthier of idle bots.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { d1RoundTrips } from "../../src/db/client";
import type { BotSession } from "../../src/objects/bot-session";
import { ADMIN_TOKEN, BotSocket, eventually, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

const WINDOW_MS = 30 * 60_000;
const bot = async (id: string) => (await get(`/api/v1/bots/${id}`)).body;
const botEvents = async (id: string) =>
  (
    await env.DB.prepare("SELECT type, data FROM events WHERE entity_type = 'bot' AND entity_id = ? ORDER BY id").bind(id).all()
  ).results.map((r: any) => ({ type: r.type, data: JSON.parse(r.data) }));
const checkHealthAt = (botId: string, nowMs: number) =>
  runInDurableObject(env.BOT_SESSION.getByName(botId), (obj: BotSession) => obj.checkHealth(nowMs));

async function connected(cap: string, name = "health-bot") {
  const b = await registerBot([cap], name);
  const sock = await BotSocket.open(b.id, b.token);
  await sock.next("connected");
  return { ...b, sock };
}

/** `n` tasks of `cap`, each failed by the bot that gets it (one attempt each). */
async function failTasks(sock: BotSocket, cap: string, n: number) {
  for (let i = 0; i < n; i++) {
    await post("/api/v1/tasks", { capability: cap, max_attempts: 1, payload: { i } });
    const assigned = await sock.next("task_assigned");
    await sock.complete(assigned.payload.task_id, { error: "broken" }, false);
  }
}

describe("bot health", () => {
  it("a bot that keeps failing is quarantined and offered no work; it recovers when its failures leave the window", async () => {
    const cap = uniqueCapability("health");
    const bad = await connected(cap, "flaky");
    expect(await bot(bad.id)).toMatchObject({ health_score: 1, quarantined: false, quarantined_at: null });

    await failTasks(bad.sock, cap, 5);
    const quarantined = await eventually(
      async () => {
        const b = await bot(bad.id);
        return b.quarantined && b;
      },
      5000,
      "the quarantine",
    );
    expect(quarantined.health_score).toBeLessThan(0.3);
    expect(quarantined.quarantined_at).toBeTruthy();
    const metrics = await (
      await SELF.fetch("http://coordinator.test/metrics", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).text();
    expect(metrics).toMatch(/^clawbot_bots_quarantined [1-9]/m);
    expect(metrics).toMatch(/^clawbot_bot_quarantines_total [1-9]/m);
    const event = (await botEvents(bad.id)).find((e) => e.type === "bot_quarantined");
    expect(event?.data).toMatchObject({ attempts: 5, completed: 0, health_score: quarantined.health_score });

    // No work for it: a new task waits although the bot is idle and connected...
    const waiting = (await post("/api/v1/tasks", { capability: cap, payload: { after: "quarantine" } })).body;
    await new Promise((r) => setTimeout(r, 300));
    expect((await get(`/api/v1/tasks/${waiting.id}`)).body).toMatchObject({ status: "pending", bot_id: null, waiting_for: "quarantined" });
    // (nor is it listed as available)
    expect((await get(`/api/v1/bots/available?capability=${cap}`)).body.map((b: any) => b.id)).not.toContain(bad.id);

    // ...until the window slides past its failures (the alarm's check, on a clock half an hour on).
    await checkHealthAt(bad.id, Date.now() + WINDOW_MS + 1000);
    expect(await bot(bad.id)).toMatchObject({ quarantined: false, health_score: 1 });
    expect((await botEvents(bad.id)).map((e) => e.type)).toContain("bot_recovered");
    const assigned = await bad.sock.next("task_assigned");
    expect(assigned.payload.task_id).toBe(waiting.id);
    bad.sock.close();
  });

  it("a healthy bot takes the work a quarantined one is not offered; an admin can clear the quarantine", async () => {
    const cap = uniqueCapability("health2");
    const bad = await connected(cap, "flaky");
    await failTasks(bad.sock, cap, 5);
    await eventually(async () => (await bot(bad.id)).quarantined, 5000, "the quarantine");
    const good = await connected(cap, "steady");
    const task = (await post("/api/v1/tasks", { capability: cap })).body;
    const got = await good.sock.next("task_assigned");
    expect(got.payload.task_id).toBe(task.id);

    // A checkup before the window slid changes nothing.
    await checkHealthAt(bad.id, Date.now() + 60_000);
    expect((await bot(bad.id)).quarantined).toBe(true);

    const cleared = await post(`/api/v1/bots/${bad.id}/unquarantine`);
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({ quarantined: false, quarantined_at: null, health_score: 1 });
    expect((await botEvents(bad.id)).map((e) => e.type)).toContain("bot_quarantine_cleared");
    const next = (await post("/api/v1/tasks", { capability: cap })).body;
    expect((await bad.sock.next("task_assigned")).payload.task_id).toBe(next.id);
    expectError(await post("/api/v1/bots/missing/unquarantine"), 404, "bot_not_found");
    bad.sock.close();
    good.sock.close();
  });

  it("reconnects lower the score, and a reconnect still costs two D1 round trips (the score rides in the connect's write)", async () => {
    const b = await registerBot([uniqueCapability("flap")], "flapping");
    const perReconnect: number[] = [];
    for (let i = 0; i < 6; i++) {
      const before = d1RoundTrips.count;
      const sock = await BotSocket.open(b.id, b.token);
      await sock.next("connected");
      perReconnect.push(d1RoundTrips.count - before);
      sock.close();
      await new Promise((r) => setTimeout(r, 50));
    }
    // (the first is a connect, not a reconnect)
    expect(perReconnect.slice(1), JSON.stringify(perReconnect)).toEqual([2, 2, 2, 2, 2]);
    // Five reconnects in the window: stability 1 / (1 + 5/3) → the score is 0.5 + 0.5 × 0.375 ≈ 0.69.
    await eventually(async () => (await bot(b.id)).health_score < 0.75 && true, 3000, "the lower score");
    expect((await bot(b.id)).quarantined).toBe(false); // reconnects alone never quarantine
  });

  it("dispatch prefers the healthier of two idle bots, even over the one least recently used", async () => {
    const cap = uniqueCapability("health3");
    const shaky = await connected(cap, "shaky");
    const sound = await connected(cap, "sound");
    // The shaky one was used longest ago (it would win on fairness alone) but scores 0.5.
    await env.DB.prepare("UPDATE bots SET health_score = 0.5, last_assigned_at = 0 WHERE id = ?").bind(shaky.id).run();
    await env.DB.prepare("UPDATE bots SET last_assigned_at = ? WHERE id = ?").bind(Date.now(), sound.id).run();
    const task = (await post("/api/v1/tasks", { capability: cap })).body;
    expect((await sound.sock.next("task_assigned")).payload.task_id).toBe(task.id);
    expect((await bot(shaky.id)).current_task_id).toBeNull();
    shaky.sock.close();
    sound.sock.close();
  });
});
