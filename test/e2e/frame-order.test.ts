/**
 * A bot's frames are applied in the order it sent them, against `wrangler dev` over real
 * WebSockets, with the group-commit writer off (the default) and on: 20 bots each hold a job's
 * step and send 20 progress and 20 log frames interleaved in one burst, without waiting between
 * them; each job's watcher sees progress 0, log 0, progress 1, log 1, … exactly. (Inside the Workers test pool, frames sent back
 * to back from the pool's own in-process socket can arrive swapped — about one task in five in a
 * burst like this one — so the ordering is asserted here, from outside, as a bot sees it.)
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { E2E_ADMIN_TOKEN, type Harness, mapLimit, startHarness, until } from "../../scripts/lib/harness";

const BOTS = 20;
const FRAMES_PER_KIND = 20;

/** A socket and everything it received, in order. */
function open(url: string, headers: Record<string, string>) {
  const ws = new WebSocket(url, { headers });
  const got: any[] = [];
  ws.on("message", (data) => got.push(JSON.parse(data.toString())));
  const opened = new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
  });
  return { ws, got, opened };
}

async function oneBotOneJob(h: Harness, cap: string, n: number) {
  const bot = (await h.api("POST", "/api/v1/bots", { name: `order-${n}`, capabilities: [cap] })).body;
  const job = (await h.api("POST", "/api/v1/jobs", { task: { payload: { n }, capability: cap } })).body;
  const wsBase = h.coordinator.url.replace("http", "ws");
  const watcher = open(`${wsBase}${job.websocket_url}`, { Authorization: `Bearer ${E2E_ADMIN_TOKEN}` });
  await watcher.opened;
  await until("the watcher's snapshot", 10_000, async () => watcher.got.some((m) => m.type === "status"), 20);
  const sock = open(`${wsBase}/api/v1/ws/control?bot_id=${bot.id}`, { Authorization: `Bearer ${bot.token}` });
  await sock.opened;
  await until("the assignment", 10_000, async () => sock.got.some((m) => m.type === "task_assigned"), 20);
  const taskId = sock.got.find((m) => m.type === "task_assigned").payload.task_id as string;
  sock.ws.send(JSON.stringify({ type: "task_started", payload: { task_id: taskId } }));
  await until("the start's ack", 10_000, async () => sock.got.some((m) => m.type === "task_ack"), 20);
  for (let i = 0; i < FRAMES_PER_KIND; i++) {
    sock.ws.send(JSON.stringify({ type: "task_progress", payload: { task_id: taskId, progress: i, message: `p${i}` } }));
    sock.ws.send(JSON.stringify({ type: "task_log", payload: { task_id: taskId, lines: [`l${i}`] } }));
  }
  const burst = () => watcher.got.filter((m) => m.type === "progress" || m.type === "log");
  await until("every frame's event", 20_000, async () => burst().length >= 2 * FRAMES_PER_KIND, 20);
  const seen = burst().map((m) => (m.type === "progress" ? `p${m.data.progress}` : m.data.lines[0]));
  sock.ws.close();
  watcher.ws.close();
  return seen;
}

const expected = Array.from({ length: FRAMES_PER_KIND }, (_, i) => [`p${i}`, `l${i}`]).flat();

for (const groupCommit of ["off", "on"]) {
  describe(`a bot's frames in order (group commit ${groupCommit})`, () => {
    let h: Harness;
    beforeAll(async () => {
      h = await startHarness({ LOG_LEVEL: "error", D1_GROUP_COMMIT: groupCommit });
    }, 120_000);
    afterAll(async () => {
      await h?.stop();
    });

    it(`${BOTS} bots × ${2 * FRAMES_PER_KIND} frames in a burst: each job's events follow the bot's order`, async () => {
      const runs = await mapLimit(
        Array.from({ length: BOTS }, (_, n) => n),
        BOTS,
        (n) => oneBotOneJob(h, `order-${groupCommit}-${n}`, n),
      );
      for (const seen of runs) expect(seen).toEqual(expected);
    }, 90_000);
  });
}
