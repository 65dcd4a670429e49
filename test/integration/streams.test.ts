import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { createCtx } from "../../src/services/context";
import { sweep } from "../../src/services/sweeper";
import { ADMIN_TOKEN, BotSocket, eventually, expectError, get, post, registerBot, StreamSocket, uniqueCapability } from "../helpers/api";

/** A job nobody can run (its capability has no bot), so only the events a test publishes reach its stream. */
async function idleJob() {
  const res = await post("/api/v1/jobs", { task: { capability: uniqueCapability("idle") } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body as { id: string; websocket_url: string };
}

/** Publishes as the coordinator does: straight to the stream's Durable Object. */
const publish = (jobId: string, n: number, from = 0) =>
  env.EVENT_STREAM.getByName(`job:${jobId}`).publish(
    Array.from({ length: n }, (_, i) => ({ type: "progress" as const, data: { i: from + i } })),
  );

/** Deterministic PRNG for the drop points (mulberry32), so a failure is reproducible. */
function prng(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("event streams", () => {
  it("events published before anyone watches are kept; since=0 replays them in order, then live ones follow", async () => {
    const job = await idleJob();
    await publish(job.id, 5);
    const w = await StreamSocket.open(`${job.websocket_url}?since=0`);
    await w.waitFor("the replay", (m) => m.data?.i === 4);
    await publish(job.id, 1, 5);
    await w.waitFor("the live event", (m) => m.data?.i === 5);
    expect(w.log.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(w.log[0]).toMatchObject({ type: "status", status: "queued" });
    expect(w.log.slice(1).map((m) => m.data.i)).toEqual([0, 1, 2, 3, 4, 5]);
    w.close();
  });

  it("property: a watcher dropped at random points and resumed with ?since= receives the whole log, in order, exactly once", async () => {
    const job = await idleJob();
    const random = prng(20261201);
    const total = 120;
    let published = 0;
    const received: any[] = [];
    let lastSeq = 0;
    for (let round = 0; round < 80 && published < total; round++) {
      const w = await StreamSocket.open(`${job.websocket_url}?since=${lastSeq}`);
      // Publish a random burst while it watches, then drop it after a random number of messages.
      const burst = Math.min(total - published, Math.floor(random() * 10));
      if (burst > 0) await publish(job.id, burst, published);
      published += burst;
      const keep = Math.floor(random() * (published + 1 - lastSeq + 1));
      if (keep > 0) await w.waitFor(`${keep} messages`, () => w.log.length >= Math.min(keep, published + 1 - lastSeq));
      const got = w.log.slice(0, Math.min(keep, w.log.length));
      w.close();
      received.push(...got);
      if (got.length) lastSeq = got[got.length - 1].seq;
    }
    // Whatever is left, in one last connection.
    const last = await StreamSocket.open(`${job.websocket_url}?since=${lastSeq}`);
    if (lastSeq < published + 1) await last.waitFor("the rest", (m) => m.seq === published + 1);
    received.push(...last.log);
    last.close();
    const log = (await get(`/api/v1/jobs/${job.id}/events?limit=500`)).body;
    expect(log).toHaveLength(published + 1);
    expect(received.map((m) => m.seq)).toEqual(log.map((e: any) => e.seq));
    expect(received).toEqual(log);
    expect(published).toBe(total);
  });

  it("D1 holds a copy of the log (stream_events), about a second behind, each event once", async () => {
    const job = await idleJob();
    await publish(job.id, 5);
    const log = (await get(`/api/v1/jobs/${job.id}/events`)).body;
    const copy = await eventually(
      async () => {
        const rows = (
          await env.DB.prepare("SELECT seq, type, data FROM stream_events WHERE stream = ? ORDER BY seq").bind(`job:${job.id}`).all()
        ).results as any[];
        return rows.length === log.length ? rows : null;
      },
      10_000,
      "the D1 copy",
    );
    expect(copy.map((r) => r.seq)).toEqual(log.map((e: any) => e.seq));
    expect(copy.map((r) => JSON.parse(r.data))).toEqual(log.map((e: any) => e.data));
    expect(copy.map((r) => r.type)).toEqual(log.map((e: any) => e.type));
  });

  it("100 watchers of one job each get every event once", async () => {
    const job = await idleJob();
    const watchers = await Promise.all(Array.from({ length: 100 }, () => StreamSocket.open(job.websocket_url)));
    await publish(job.id, 3);
    for (const w of watchers) await w.waitFor("three events", () => w.events().length === 3);
    for (const w of watchers) {
      expect(w.log[0]).toMatchObject({ type: "status", seq: 1, data: { snapshot: true } });
      expect(w.events().map((m) => m.seq)).toEqual([2, 3, 4]);
      w.close();
    }
  });

  it("GET /jobs/{id}/events pages the log by seq with a Link to the next page", async () => {
    const job = await idleJob();
    await publish(job.id, 6);
    const first = await get(`/api/v1/jobs/${job.id}/events?limit=4`);
    expect(first.body.map((e: any) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(first.headers.get("X-Next-Cursor")).toBe("4");
    expect(first.headers.get("Link")).toContain("since=4");
    const second = await get(`/api/v1/jobs/${job.id}/events?limit=4&since=4`);
    expect(second.body.map((e: any) => e.seq)).toEqual([5, 6, 7]);
    expect(second.headers.get("Link")).toBeNull();
    expectError(await get(`/api/v1/jobs/${job.id}/events?since=-1`), 400, "validation_failed");
    expectError(await get(`/api/v1/jobs/${job.id}/events?limit=501`), 400, "validation_failed");
    const bad = await StreamSocket.upgrade(`${job.websocket_url}?since=abc`);
    expect(bad.status).toBe(400);
  });

  it("Server-Sent Events: the log as id/event/data records, resumed after Last-Event-ID", async () => {
    const job = await idleJob();
    await publish(job.id, 3);
    const read = async (headers: Record<string, string>, records: number) => {
      const res = await SELF.fetch(`http://coordinator.test/api/v1/jobs/${job.id}/events`, {
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, Accept: "text/event-stream", ...headers },
      });
      expect(res.status).toBe(200);
      expect(res.headers.get("Content-Type")).toContain("text/event-stream");
      const reader = res.body!.getReader();
      let text = "";
      while ((text.match(/^id: /gm) ?? []).length < records) text += new TextDecoder().decode((await reader.read()).value);
      await reader.cancel();
      return [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
    };
    expect(await read({}, 4)).toEqual([1, 2, 3, 4]);
    expect(await read({ "Last-Event-ID": "2" }, 2)).toEqual([3, 4]);
  });

  it("watchers need a reader's token, or a single-use ticket; bots and strangers are refused", async () => {
    const job = await idleJob();
    expect((await StreamSocket.upgrade(job.websocket_url, null)).status).toBe(401);
    expect((await StreamSocket.upgrade(job.websocket_url, "wrong-token")).status).toBe(401);
    const bot = await registerBot([]);
    expect((await StreamSocket.upgrade(job.websocket_url, bot.token)).status).toBe(403);
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "watcher" })).body.token;
    (await StreamSocket.open(job.websocket_url, viewer)).close();

    // A ticket: minted by a reader for one stream, opens it once.
    expectError(await post("/api/v1/stream-tickets", { resource: "job", id: job.id }, { token: bot.token }), 403, "forbidden");
    expectError(await post("/api/v1/stream-tickets", { resource: "job", id: "nope" }), 404, "job_not_found");
    expectError(await post("/api/v1/stream-tickets", { resource: "job" }), 400, "validation_failed");
    const minted = await post("/api/v1/stream-tickets", { resource: "job", id: job.id }, { token: viewer });
    expect(minted.status, JSON.stringify(minted.body)).toBe(201);
    const { ticket, websocket_url } = minted.body;
    expect(websocket_url).toBe(`${job.websocket_url}?ticket=${encodeURIComponent(ticket)}`);
    const other = await idleJob();
    expect((await StreamSocket.upgrade(`${other.websocket_url}?ticket=${encodeURIComponent(ticket)}`, null)).status).toBe(401);
    const w = await StreamSocket.open(websocket_url, null);
    await w.waitFor("the snapshot", (m) => m.type === "status");
    w.close();
    expect((await StreamSocket.upgrade(websocket_url, null)).status).toBe(401);
    expect((await StreamSocket.upgrade(`${job.websocket_url}?ticket=made-up`, null)).status).toBe(401);
    // A ticket outlives its TTL by nothing.
    const stream = env.EVENT_STREAM.getByName(`job:${job.id}`);
    const shortLived = await stream.mintTicket(1);
    await new Promise((r) => setTimeout(r, 5));
    expect(await stream.consumeTicket(shortLived)).toBe(false);
    // A ticket is no token: it opens nothing else.
    expectError(await get(`/api/v1/jobs/${job.id}?ticket=${encodeURIComponent(ticket)}`, { token: null }), 401, "unauthorized");
  });

  it("the fleet stream carries bots coming and going, job summaries as their status changes, and queue depth per capability", async () => {
    const fleet = await StreamSocket.open("/api/v1/ws/fleet");
    const job = await idleJob();
    await post(`/api/v1/jobs/${job.id}/cancel`);
    // The job appears when it is created, and again at each change of status.
    await fleet.waitFor("the new job", (m) => m.type === "job" && m.data.job_id === job.id && m.data.status === "queued");
    await fleet.waitFor("the job cancelled", (m) => m.type === "job" && m.data.job_id === job.id && m.data.status === "cancelled");

    const bot = await registerBot(["fleet-cap"], "fleet-bot");
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    expect(await fleet.waitFor("the bot online", (m) => m.type === "bot" && m.data.bot_id === bot.id)).toMatchObject({
      data: { status: "online", name: "fleet-bot", capabilities: ["fleet-cap"] },
    });
    sock.close();
    await fleet.waitFor("the bot gone", (m) => m.type === "bot" && m.data.bot_id === bot.id && m.data.status === "disconnected");

    const cap = uniqueCapability("depth");
    for (let i = 0; i < 3; i++) await post("/api/v1/tasks", { capability: cap });
    await sweep(createCtx(env));
    const queue = await fleet.waitFor(
      "queue depth",
      (m) => m.type === "queue" && m.data.capabilities.some((c: any) => c.capability === cap),
    );
    expect(queue.data.capabilities.find((c: any) => c.capability === cap)).toMatchObject({ pending: 3 });
    fleet.close();
  });
});
