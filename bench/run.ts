/**
 * `npm run bench`: task round trip and throughput through a real `wrangler dev`
 * coordinator with N in-process bot clients (real WebSockets over loopback),
 * next to a plain Node `ws` echo server as the floor on the same machine.
 *
 * round trip = POST /tasks → the bot receives task_assigned → the bot's
 * completion is acknowledged (committed to D1, so visible to GET /tasks/{id}).
 * Writes bench/results.json and prints a table. Loopback only; every loop is bounded.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { WebSocket, WebSocketServer } from "ws";
import { BotClient } from "../bot/src/client";
import { echoHandler } from "../bot/src/handlers";
import { ROOT, startCoordinator } from "../scripts/lib/coordinator";
import { E2E_ADMIN_TOKEN, type Harness, mapLimit, onFreePort, startHarness } from "../scripts/lib/harness";
import { removeRunDir } from "../scripts/lib/run-state";
import { groupCpuMs } from "./cpu";
import { eventLatency } from "./events";
import { startNodeFloor } from "./floor/node-server";
import { startCpuProfile } from "./profile";
import { fleetSweep } from "./sweeper";

/** Something that serves the coordinator's protocol: the coordinator itself, or one of the floors. */
interface Target {
  name: string;
  url: string;
  api: Harness["api"];
  /** Only the coordinator counts its D1 round trips. */
  countsD1: boolean;
  /** The process group of its `wrangler dev` (its CPU is read from /proc); none for the in-process Node floor. */
  pgid?: number;
}

/** A Target for a server at `url` (the floors ignore the token). */
function targetAt(name: string, url: string, countsD1 = false, pgid?: number): Target {
  return {
    name,
    url,
    countsD1,
    pgid,
    async api(method, p, body) {
      const res = await fetch(`${url}${p}`, {
        method,
        headers: { Authorization: `Bearer ${E2E_ADMIN_TOKEN}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
    },
  };
}

const BOT_COUNTS = (process.env.BENCH_BOTS ?? "1,10,50").split(",").map(Number);
/** Enough for the p99 printed to be a real percentile (at least two samples above it), not the maximum. */
const LATENCY_SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const THROUGHPUT_TASKS_PER_BOT = 10;
const THROUGHPUT_MAX_TASKS = 500;
const CREATE_CONCURRENCY = 16;
const ROUND_TIMEOUT_MS = 120_000;
const BATCH_TASKS = 500;
const FLEET_REGISTERED = Number(process.env.BENCH_FLEET_BOTS ?? 10_000);
const FLEET_CONNECTED = Number(process.env.BENCH_FLEET_CONNECTED ?? 1_000);

/** Nearest-rank percentile: the smallest sample with at least p % of the samples at or below it. */
const pct = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
/** p99 only from 100 samples or more: below that it would be the maximum under another name. */
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50_ms: round(pct(s, 50)), p99_ms: s.length >= 100 ? round(pct(s, 99)) : null, samples: s.length };
};
const show = (x: { p50_ms: number; p99_ms: number | null; samples: number }) => `${x.p50_ms} / ${x.p99_ms ?? "n/a"} (n=${x.samples})`;

/** Every response the bench counts must be the one it expects; a refused request is a failed run, not a fast sample. */
function expectStatus(res: { status: number; body: unknown }, status: number, what: string) {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
}
const round = (x: number) => Math.round(x * 100) / 100;
const now = () => performance.now();

async function wsEchoFloor(clients: number, messages: number) {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise((r) => server.once("listening", r));
  server.on("connection", (ws) => ws.on("message", (d) => ws.send(d)));
  const { port } = server.address() as { port: number };
  const sockets = await Promise.all(
    Array.from(
      { length: clients },
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}`);
          ws.once("open", () => resolve(ws));
          ws.once("error", reject);
        }),
    ),
  );
  const rtt = (ws: WebSocket) =>
    new Promise<number>((resolve) => {
      const t0 = now();
      ws.once("message", () => resolve(now() - t0));
      ws.send(JSON.stringify({ type: "task_assigned", payload: { task_id: "x", task_payload: {} } }));
    });
  const latencies: number[] = [];
  for (let i = 0; i < messages; i++) latencies.push(await rtt(sockets[0]!));
  const perClient = Math.ceil((messages * 5) / clients);
  const t0 = now();
  await Promise.all(
    sockets.map(async (ws) => {
      for (let i = 0; i < perClient; i++) await rtt(ws);
    }),
  );
  const seconds = (now() - t0) / 1000;
  for (const s of sockets) s.close();
  await new Promise((r) => server.close(r));
  return { ...stats(latencies), per_second: round((perClient * clients) / seconds) };
}

interface Tracker {
  received: Map<string, number>;
  acked: Map<string, number>;
  waiters: Map<string, () => void>;
}

async function startBots(h: Target, n: number, capability: string, tracker: Tracker): Promise<BotClient[]> {
  const bots = await mapLimit(
    Array.from({ length: n }, (_, i) => i),
    8,
    async (i) => {
      const res = await h.api("POST", "/api/v1/bots", { name: `bench-${capability}-${i}`, capabilities: [capability] });
      expectStatus(res, 201, "register bot");
      const client = new BotClient({
        url: h.url,
        botId: res.body.id,
        token: res.body.token,
        handlers: { echo: echoHandler },
        log: () => {},
        onMessage: (msg) => {
          if (msg.type === "task_assigned") tracker.received.set(msg.payload.task_id, now());
          if (msg.type === "task_ack" && msg.payload.status === "completed") {
            tracker.acked.set(msg.payload.task_id, now());
            tracker.waiters.get(msg.payload.task_id)?.();
          }
        },
      });
      await client.start();
      return client;
    },
  );
  return bots;
}

function waitAck(tracker: Tracker, taskId: string, timeoutMs: number): Promise<void> {
  if (tracker.acked.has(taskId)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`task ${taskId} not completed within ${timeoutMs}ms`)), timeoutMs);
    tracker.waiters.set(taskId, () => {
      clearTimeout(timer);
      tracker.waiters.delete(taskId);
      resolve();
    });
  });
}

let lastD1Count = 0;

/**
 * The coordinator's counters so far (BENCH_MODE=1): its D1 round trips and the rows they read (src/db/client.ts),
 * and its bot objects' storage writes (src/objects/counted-storage.ts).
 */
async function coordinatorCounters(
  h: Target,
): Promise<{ roundTrips: number; rowsRead: number; botStorageWrites: number; d1WaitedMs: number }> {
  const res = await h.api("GET", "/api/v1/_bench/d1");
  expectStatus(res, 200, "read the D1 counter");
  const count = res.body.round_trips as number;
  // The counter lives in the Worker's isolate: it only goes back if the Worker restarted, which wrangler
  // does when a source file changes (its bundler always watches). Every count since would be wrong.
  if (count < lastD1Count) throw new Error("the coordinator restarted during the run (a source file changed?): D1 counts are void");
  lastD1Count = count;
  return {
    roundTrips: count,
    rowsRead: res.body.rows_read as number,
    botStorageWrites: res.body.bot_storage_writes as number,
    d1WaitedMs: res.body.d1_waited_ms as number,
  };
}

/** D1 round trips the coordinator has made so far. */
const d1RoundTrips = async (h: Target) => (await coordinatorCounters(h)).roundTrips;

/** workerd's CPU (ms) used so far by a target under wrangler dev; null for the Node floor or off Linux. */
const workerdCpuMs = (h: Target) => (h.pgid === undefined ? null : (groupCpuMs(h.pgid)?.workerdMs ?? null));
const perTask = (after: number | null, before: number | null, tasks: number) =>
  after === null || before === null ? null : round((after - before) / tasks);
type Counters = Awaited<ReturnType<typeof coordinatorCounters>>;
/** One of the coordinator's counters per task between two readings (null when the target does not count). */
const counterPerTask = (before: Counters | null, after: Counters | null, key: keyof Counters, tasks: number) =>
  perTask(after?.[key] ?? null, before?.[key] ?? null, tasks);

/**
 * Waits until the coordinator makes no D1 round trip for 1.5 s (at most 15 s): the bots of a round
 * that just ended have their closes written a second after they close, which would otherwise be
 * counted as the next measurement's.
 */
async function d1Quiet(h: Target): Promise<void> {
  const deadline = Date.now() + 15_000;
  let last = await d1RoundTrips(h);
  let quietSince = Date.now();
  while (Date.now() < deadline && Date.now() - quietSince < 1500) {
    await new Promise((r) => setTimeout(r, 250));
    const now = await d1RoundTrips(h);
    if (now !== last) [last, quietSince] = [now, Date.now()];
  }
}

/** D1 round trips of heartbeats (answered by the runtime: expected 0) and of a reconnect of an idle bot. */
async function d1Budget(h: Target) {
  await d1Quiet(h);
  const reg = await h.api("POST", "/api/v1/bots", { name: "bench-budget", capabilities: ["bench-budget"] });
  expectStatus(reg, 201, "register bot");
  const open = async () => {
    const url = `${h.url.replace(/^http/, "ws")}/api/v1/ws/control?bot_id=${reg.body.id}`;
    const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${reg.body.token}` } });
    await new Promise<void>((resolve, reject) => {
      ws.once("message", () => resolve()); // `connected`: the object has done its part of the connect
      ws.once("error", reject);
    });
    return ws;
  };
  let ws = await open();
  const HEARTBEATS = 100;
  let before = await d1RoundTrips(h);
  for (let i = 0; i < HEARTBEATS; i++) {
    ws.send('{"type":"heartbeat"}');
    await new Promise((r) => ws.once("message", r));
  }
  const perHeartbeat = ((await d1RoundTrips(h)) - before) / HEARTBEATS;
  const RECONNECTS = 10;
  before = await d1RoundTrips(h);
  for (let i = 0; i < RECONNECTS; i++) {
    const closed = new Promise((r) => ws.once("close", r));
    ws.close();
    await closed;
    ws = await open();
  }
  // A reconnect is the close it follows plus the new connect.
  const perReconnect = ((await d1RoundTrips(h)) - before) / RECONNECTS;
  ws.close();
  return { per_heartbeat: round(perHeartbeat), per_reconnect: round(perReconnect) };
}

async function protocolRound(h: Target, n: number) {
  const capability = `bench${n}-${Date.now().toString(36)}`;
  const tracker: Tracker = { received: new Map(), acked: new Map(), waiters: new Map() };
  const bots = await startBots(h, n, capability, tracker);
  try {
    // Latency: one task at a time, so the figure is the path, not queueing.
    const toBot: number[] = [];
    const roundTrip: number[] = [];
    if (h.countsD1) await d1Quiet(h); // the last round's closes are not this round's cost
    const countersBefore = h.countsD1 ? await coordinatorCounters(h) : null;
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const t0 = now();
      const res = await h.api("POST", "/api/v1/tasks", { payload: { i }, capability });
      expectStatus(res, 201, "create task");
      const id = res.body.id as string;
      await waitAck(tracker, id, 30_000);
      toBot.push(tracker.received.get(id)! - t0);
      roundTrip.push(tracker.acked.get(id)! - t0);
    }
    const countersAfter = countersBefore ? await coordinatorCounters(h) : null;
    // Throughput: many tasks in flight over all N bots.
    const total = Math.min(THROUGHPUT_MAX_TASKS, Math.max(100, n * THROUGHPUT_TASKS_PER_BOT));
    const cpuBefore = workerdCpuMs(h);
    const t0 = now();
    const ids = await mapLimit(
      Array.from({ length: total }, (_, i) => i),
      CREATE_CONCURRENCY,
      async (i) => {
        const res = await h.api("POST", "/api/v1/tasks", { payload: { i }, capability });
        expectStatus(res, 201, "create task");
        return res.body.id as string;
      },
    );
    await Promise.all(ids.map((id) => waitAck(tracker, id, ROUND_TIMEOUT_MS)));
    const seconds = (now() - t0) / 1000;
    const cpuPerTaskMs = perTask(workerdCpuMs(h), cpuBefore, total);
    return {
      bots: n,
      d1_round_trips_per_task: counterPerTask(countersBefore, countersAfter, "roundTrips", LATENCY_SAMPLES),
      d1_rows_read_per_task: counterPerTask(countersBefore, countersAfter, "rowsRead", LATENCY_SAMPLES),
      bot_storage_writes_per_task: counterPerTask(countersBefore, countersAfter, "botStorageWrites", LATENCY_SAMPLES),
      /** How long the coordinator waited for D1 per task, one task at a time: D1's share of the round trip. */
      d1_ms_per_task: counterPerTask(countersBefore, countersAfter, "d1WaitedMs", LATENCY_SAMPLES),
      create_to_bot: stats(toBot),
      round_trip: stats(roundTrip),
      throughput: { tasks: total, seconds: round(seconds), per_second: round(total / seconds), workerd_cpu_ms_per_task: cpuPerTaskMs },
      batch: await batchRound(h, capability, tracker),
    };
  } finally {
    for (const b of bots) b.stop();
  }
}

/** `POST /tasks/batch` of the largest batch, created → every task completed (the floors serve the same call). */
async function batchRound(h: Target, capability: string, tracker: Tracker) {
  const tasks = Array.from({ length: BATCH_TASKS }, (_, i) => ({ payload: { i }, capability }));
  const countersBefore = h.countsD1 ? await coordinatorCounters(h) : null;
  const cpuBefore = workerdCpuMs(h);
  const t0 = now();
  const res = await h.api("POST", "/api/v1/tasks/batch", { tasks });
  expectStatus(res, 201, "create a batch");
  await Promise.all((res.body as { id: string }[]).map((t) => waitAck(tracker, t.id, ROUND_TIMEOUT_MS)));
  const seconds = (now() - t0) / 1000;
  const cpuPerTaskMs = perTask(workerdCpuMs(h), cpuBefore, BATCH_TASKS);
  const countersAfter = countersBefore ? await coordinatorCounters(h) : null;
  return {
    tasks: BATCH_TASKS,
    seconds: round(seconds),
    per_second: round(BATCH_TASKS / seconds),
    workerd_cpu_ms_per_task: cpuPerTaskMs,
    d1_round_trips_per_task: counterPerTask(countersBefore, countersAfter, "roundTrips", BATCH_TASKS),
    d1_rows_read_per_task: counterPerTask(countersBefore, countersAfter, "rowsRead", BATCH_TASKS),
    bot_storage_writes_per_task: counterPerTask(countersBefore, countersAfter, "botStorageWrites", BATCH_TASKS),
  };
}

type Round = Awaited<ReturnType<typeof protocolRound>>;

/** Every bot count through one target; `stop` runs whatever happens. */
async function roundsThrough(target: Target, stop: () => Promise<void>, profilePort: number | null = null): Promise<Round[]> {
  const rounds: Round[] = [];
  try {
    for (const n of BOT_COUNTS) {
      console.log(`${target.name} with ${n} bot(s) …`);
      // BENCH_PROFILE=1: the round with the most bots is profiled (bench/profile.ts).
      const profiler = profilePort !== null && n === Math.max(...BOT_COUNTS) ? await startCpuProfile(profilePort) : null;
      rounds.push(await protocolRound(target, n));
      if (profiler) {
        writeFileSync(
          path.join(ROOT, "bench/profile.txt"),
          `${target.name}, ${n} bots, ${new Date().toISOString()}\n${await profiler.stop()}\n`,
        );
        console.log("CPU profile written to bench/profile.txt");
      }
    }
  } finally {
    await stop();
  }
  return rounds;
}

const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round(a / b));

async function main() {
  const started = new Date();
  console.log("ws echo floor …");
  const echo = await wsEchoFloor(10, LATENCY_SAMPLES);

  const node = await startNodeFloor();
  const nodeRounds = await roundsThrough(targetAt("node floor", node.url), () => node.close());

  console.log("starting the platform floor (wrangler dev, one Durable Object with SQLite) …");
  const floorDir = mkdtempSync(path.join(os.tmpdir(), "cbc-floor-"));
  const platform = await onFreePort((port) =>
    startCoordinator({
      port,
      persistDir: floorDir,
      config: path.join(ROOT, "bench/floor/wrangler.toml"),
      logFile: "/dev/null",
    }),
  );
  const platformRounds = await roundsThrough(targetAt("platform floor", platform.url, false, platform.process.pid), async () => {
    await platform.stop();
    removeRunDir(floorDir);
  });

  console.log("starting the coordinator (wrangler dev) …");
  // BENCH_D1_GROUP_COMMIT=off measures the coordinator without group commit (on by default, as in config.ts).
  const profilePort = process.env.BENCH_PROFILE === "1" ? Number(process.env.BENCH_INSPECTOR_PORT ?? 9231) : null;
  if (profilePort !== null) process.env.CLAWBOT_INSPECTOR_PORT = String(profilePort);
  const h = await startHarness({ LOG_LEVEL: "error", BENCH_MODE: "1", D1_GROUP_COMMIT: process.env.BENCH_D1_GROUP_COMMIT ?? "on" });
  const coordinator = targetAt("coordinator", h.coordinator.url, true, h.coordinator.process.pid);
  let workerFloor: ReturnType<typeof stats> | null = null;
  let budget: Awaited<ReturnType<typeof d1Budget>> | null = null;
  const events: { watchers: number; latency: ReturnType<typeof stats> }[] = [];
  let fleet: Awaited<ReturnType<typeof fleetSweep>> | null = null;
  const coordinatorRounds = await roundsThrough(
    coordinator,
    async () => {
      try {
        // One request through wrangler dev with one D1 query (`GET /health` runs SELECT 1).
        const healthMs: number[] = [];
        for (let i = 0; i < LATENCY_SAMPLES; i++) {
          const t0 = now();
          const res = await fetch(`${h.coordinator.url}/health`);
          expectStatus({ status: res.status, body: await res.text() }, 200, "GET /health");
          healthMs.push(now() - t0);
        }
        workerFloor = stats(healthMs);
        budget = await d1Budget(coordinator);
        // Event latency (bot progress → watcher): every delivery counts, so 100 watchers give 100 samples per message.
        for (const [watchers, messages] of [
          [1, LATENCY_SAMPLES],
          [100, Math.max(1, Math.round(LATENCY_SAMPLES / 4))],
        ] as const) {
          console.log(`event latency with ${watchers} watcher(s) …`);
          events.push({
            watchers,
            latency: stats(await eventLatency(h.coordinator.url, coordinator.api, E2E_ADMIN_TOKEN, watchers, messages)),
          });
        }
        if (FLEET_REGISTERED > 0) {
          console.log(`the sweeper over a fleet of ${FLEET_REGISTERED} bots, ${FLEET_CONNECTED} connected …`);
          fleet = await fleetSweep(h.coordinator.url, coordinator.api, {
            registered: FLEET_REGISTERED,
            connected: FLEET_CONNECTED,
            sweeps: 3,
          });
        }
      } finally {
        await h.stop();
      }
    },
    profilePort,
  );

  const compared = coordinatorRounds.map((r, i) => {
    const p = platformRounds[i]!;
    const nf = nodeRounds[i]!;
    return {
      bots: r.bots,
      vs_platform_floor: {
        round_trip_p50: ratio(r.round_trip.p50_ms, p.round_trip.p50_ms),
        round_trip_p99: ratio(r.round_trip.p99_ms, p.round_trip.p99_ms),
        throughput: ratio(r.throughput.per_second, p.throughput.per_second),
        batch: ratio(r.batch.per_second, p.batch.per_second),
      },
      vs_node_floor: {
        round_trip_p50: ratio(r.round_trip.p50_ms, nf.round_trip.p50_ms),
        round_trip_p99: ratio(r.round_trip.p99_ms, nf.round_trip.p99_ms),
        throughput: ratio(r.throughput.per_second, nf.throughput.per_second),
        batch: ratio(r.batch.per_second, nf.batch.per_second),
      },
    };
  });
  const results = {
    date: started.toISOString(),
    command: `npm run bench (BENCH_BOTS=${BOT_COUNTS.join(",")}, BENCH_SAMPLES=${LATENCY_SAMPLES}, D1 group commit ${process.env.BENCH_D1_GROUP_COMMIT ?? "on"})`,
    machine: {
      cpu: os.cpus()[0]?.model ?? "unknown",
      cores: os.cpus().length,
      memory_gib: round(os.totalmem() / 2 ** 30),
      node: process.version,
      platform: `${os.platform()} ${os.release()}`,
    },
    method:
      "Each setup serves the same protocol (POST /tasks, the bot WebSocket, seed 001 messages) on 127.0.0.1; bots are in-process BotClient instances over real WebSockets; latency = one task at a time (create → task_assigned → task_complete acked); throughput = many tasks in flight; batch = one POST /tasks/batch of 500, created → every task completed. Platform floor: wrangler dev, one Durable Object with the queue in its SQLite (bench/floor/worker.ts). Node floor: one Node process, state in memory (bench/floor/node-server.ts).",
    ws_echo: echo,
    worker_d1_health: workerFloor,
    d1_round_trips: {
      per_task: coordinatorRounds.map((r) => ({
        bots: r.bots,
        per_task: r.d1_round_trips_per_task,
        rows_read_per_task: r.d1_rows_read_per_task,
        per_batch_task: r.batch.d1_round_trips_per_task,
        rows_read_per_batch_task: r.batch.d1_rows_read_per_task,
        bot_storage_writes_per_task: r.bot_storage_writes_per_task,
        bot_storage_writes_per_batch_task: r.batch.bot_storage_writes_per_task,
      })),
      ...(budget ?? {}),
    },
    node_floor: nodeRounds,
    platform_floor: platformRounds,
    coordinator: coordinatorRounds,
    coordinator_ratios: compared,
    event_latency: events,
    sweeper_fleet: fleet,
  };
  const out = path.join(ROOT, "bench/results.json");
  writeFileSync(out, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${results.date}  ${results.machine.cpu} × ${results.machine.cores}, node ${results.machine.node}`);
  console.log(
    "| setup | bots | create→bot p50 / p99 (ms) | round trip p50 / p99 (ms) | tasks/s | coordinator ÷ this: p50 / p99 / tasks/s |",
  );
  console.log("|---|---|---|---|---|---|");
  for (const [name, rounds] of [
    ["Node floor (memory)", nodeRounds],
    ["platform floor (1 DO + SQLite)", platformRounds],
    ["coordinator", coordinatorRounds],
  ] as const) {
    rounds.forEach((r, i) => {
      const c = coordinatorRounds[i]!;
      const vs =
        name === "coordinator"
          ? "–"
          : `${ratio(c.round_trip.p50_ms, r.round_trip.p50_ms)}× / ${ratio(c.round_trip.p99_ms, r.round_trip.p99_ms) ?? "n/a"}× / ${ratio(c.throughput.per_second, r.throughput.per_second)}×`;
      console.log(
        `| ${name} | ${r.bots} | ${show(r.create_to_bot)} | ${show(r.round_trip)} | ${r.throughput.per_second} (${r.throughput.tasks}) | ${vs} |`,
      );
    });
  }
  console.log(`| ws echo (Node) | 10 | – | ${show(echo)} | ${echo.per_second} msg/s | – |`);
  for (const [name, rounds] of [
    ["Node floor (memory)", nodeRounds],
    ["platform floor (1 DO + SQLite)", platformRounds],
    ["coordinator", coordinatorRounds],
  ] as const)
    rounds.forEach((r, i) => {
      const c = coordinatorRounds[i]!;
      const d1 = r.batch.d1_round_trips_per_task === null ? "" : ` (${r.batch.d1_round_trips_per_task} D1 round trips/task)`;
      const vs = name === "coordinator" ? "–" : `${ratio(c.batch.per_second, r.batch.per_second)}× tasks/s`;
      console.log(`| ${name}, POST /tasks/batch of ${r.batch.tasks} | ${r.bots} | – | – | ${r.batch.per_second}${d1} | ${vs} |`);
    });
  if (workerFloor) console.log(`| GET /health via wrangler dev (1 D1 query) | – | – | ${show(workerFloor)} | – | – |`);
  for (const e of events) console.log(`| event latency: bot progress → ${e.watchers} watcher(s) | – | – | ${show(e.latency)} | – | – |`);
  const f = fleet as Awaited<ReturnType<typeof fleetSweep>> | null;
  if (f)
    for (const [i, r] of f.sweeps.entries())
      console.log(
        `sweep ${i + 1} over ${f.registered} registered / ${f.connected} connected bots: ${r.d1_round_trips} D1 round trips, ${r.d1_statements} statements, ${r.do_wake_ups} Durable Object wake-ups (${r.sockets_checked} sockets checked), ${r.seconds} s`,
      );
  const cpu = (rounds: Round[]) =>
    rounds
      .map((r) => `${r.throughput.workerd_cpu_ms_per_task ?? "n/a"} / ${r.batch.workerd_cpu_ms_per_task ?? "n/a"} (${r.bots} bots)`)
      .join(", ");
  console.log(
    `\nworkerd CPU per task (ms, from /proc; many in flight / by batch): platform floor ${cpu(platformRounds)}; coordinator ${cpu(coordinatorRounds)}`,
  );
  console.log(
    `D1 rows read (counted, meta.rows_read): per task ${coordinatorRounds.map((r) => `${r.d1_rows_read_per_task} (${r.bots} bots)`).join(", ")}; per batch task ${coordinatorRounds.map((r) => `${r.batch.d1_rows_read_per_task} (${r.bots} bots)`).join(", ")}`,
  );
  console.log(
    `bot object storage writes (counted): per task ${coordinatorRounds.map((r) => `${r.bot_storage_writes_per_task} (${r.bots} bots)`).join(", ")}; per batch task ${coordinatorRounds.map((r) => `${r.batch.bot_storage_writes_per_task} (${r.bots} bots)`).join(", ")}`,
  );
  console.log(
    `D1 time (counted: waited for D1, one task at a time): per task ${coordinatorRounds.map((r) => `${r.d1_ms_per_task} ms of a ${r.round_trip.p50_ms} ms p50 round trip (${r.bots} bots)`).join(", ")}`,
  );
  const b = budget as Awaited<ReturnType<typeof d1Budget>> | null;
  console.log(
    `\nD1 round trips (counted): per task ${coordinatorRounds.map((r) => `${r.d1_round_trips_per_task} (${r.bots} bots)`).join(", ")}; per heartbeat ${b?.per_heartbeat}; per reconnect ${b?.per_reconnect} (the token check 1, the connect 1; a close is written to D1 only if the bot is not back within 1 s)`,
  );
  console.log(`\nwritten to ${path.relative(process.cwd(), out)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
