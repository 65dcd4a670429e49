/**
 * The rounds `npm run bench` (run.ts) drives through every target: bots on each, latency samples
 * interleaved across the targets, then throughput and a batch per target; and the coordinator's own
 * counters (BENCH_MODE=1) read around them.
 */
import { WebSocket } from "ws";
import { BotClient } from "../bot/src/client";
import { echoHandler } from "../bot/src/handlers";
import { adminCall, type Harness, mapLimit } from "../scripts/lib/harness";
import { groupCpuMs } from "./cpu";

/** Something that serves the coordinator's protocol: the coordinator itself, or one of the floors. */
export interface Target {
  name: string;
  url: string;
  api: Harness["api"];
  /** Only the coordinator counts its D1 round trips. */
  countsD1: boolean;
  /** The process group of its `wrangler dev` (its CPU is read from /proc); none for the in-process Node floor. */
  pgid?: number;
}

/** A Target for a server at `url` (the floors ignore the token). */
export function targetAt(name: string, url: string, countsD1 = false, pgid?: number): Target {
  return {
    name,
    url,
    countsD1,
    pgid,
    api: (method, p, body) => adminCall(url, method, p, body),
  };
}

/** Enough for the p99 printed to be a real percentile (at least two samples above it), not the maximum. */
export const LATENCY_SAMPLES = Number(process.env.BENCH_SAMPLES ?? 200);
const THROUGHPUT_TASKS_PER_BOT = 10;
const THROUGHPUT_MAX_TASKS = 500;
const CREATE_CONCURRENCY = 16;
const ROUND_TIMEOUT_MS = 120_000;
export const BATCH_TASKS = 500;
/** Batches per target and bot count (BENCH_BATCHES); the median is reported. */
export const BATCH_ROUNDS = Number(process.env.BENCH_BATCHES ?? 5);

/** Nearest-rank percentile: the smallest sample with at least p % of the samples at or below it. */
const pct = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
/** p99 only from 100 samples or more: below that it would be the maximum under another name. */
export const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { p50_ms: round(pct(s, 50)), p99_ms: s.length >= 100 ? round(pct(s, 99)) : null, samples: s.length };
};
export const show = (x: { p50_ms: number; p99_ms: number | null; samples: number }) =>
  `${x.p50_ms} / ${x.p99_ms ?? "n/a"} (n=${x.samples})`;

/** Every response the bench counts must be the one it expects; a refused request is a failed run, not a fast sample. */
export function expectStatus(res: { status: number; body: unknown }, status: number, what: string) {
  if (res.status !== status) throw new Error(`${what}: expected ${status}, got ${res.status}: ${JSON.stringify(res.body).slice(0, 300)}`);
}
export const round = (x: number) => Math.round(x * 100) / 100;
export const now = () => performance.now();

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
export async function d1Budget(h: Target) {
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

/** One target's figures at one bot count. */
export interface Round {
  bots: number;
  d1_round_trips_per_task: number | null;
  d1_rows_read_per_task: number | null;
  bot_storage_writes_per_task: number | null;
  /** How long the coordinator waited for D1 per task, one task at a time: D1's share of the round trip. */
  d1_ms_per_task: number | null;
  create_to_bot: ReturnType<typeof stats>;
  round_trip: ReturnType<typeof stats>;
  throughput: { tasks: number; seconds: number; per_second: number; workerd_cpu_ms_per_task: number | null };
  batch: ReturnType<typeof medianBatch>;
}

/** A target with its bots for one round. */
interface Fleet {
  target: Target;
  capability: string;
  tracker: Tracker;
  bots: BotClient[];
}

/** One task through a fleet's target: create → task_assigned → task_complete acknowledged. */
async function oneTask(f: Fleet, i: number): Promise<{ toBotMs: number; roundTripMs: number }> {
  const t0 = now();
  const res = await f.target.api("POST", "/api/v1/tasks", { payload: { i }, capability: f.capability });
  expectStatus(res, 201, `create task (${f.target.name})`);
  const id = res.body.id as string;
  await waitAck(f.tracker, id, 30_000);
  return { toBotMs: f.tracker.received.get(id)! - t0, roundTripMs: f.tracker.acked.get(id)! - t0 };
}

/** Many tasks in flight over all of a fleet's bots. */
async function throughputRound(f: Fleet) {
  const total = Math.min(THROUGHPUT_MAX_TASKS, Math.max(100, f.bots.length * THROUGHPUT_TASKS_PER_BOT));
  const cpuBefore = workerdCpuMs(f.target);
  const t0 = now();
  const ids = await mapLimit(
    Array.from({ length: total }, (_, i) => i),
    CREATE_CONCURRENCY,
    async (i) => {
      const res = await f.target.api("POST", "/api/v1/tasks", { payload: { i }, capability: f.capability });
      expectStatus(res, 201, `create task (${f.target.name})`);
      return res.body.id as string;
    },
  );
  await Promise.all(ids.map((id) => waitAck(f.tracker, id, ROUND_TIMEOUT_MS)));
  const seconds = (now() - t0) / 1000;
  return {
    tasks: total,
    seconds: round(seconds),
    per_second: round(total / seconds),
    workerd_cpu_ms_per_task: perTask(workerdCpuMs(f.target), cpuBefore, total),
  };
}

/**
 * Every target with `n` bots, measured side by side. The latency samples are interleaved — task i goes
 * through each target in turn, the order rotating — so a slow spell of this shared machine falls on all
 * of them alike and each ratio compares samples taken in the same instant (run one after the other, a
 * few minutes apart, the same code's ratio to the floor moved by half). Throughput and the batch then
 * run target by target, in the same minute. `roundTripsMs[t][i]` is target t's i-th sample, for paired ratios.
 */
export async function pairedRounds(
  targets: Target[],
  n: number,
  /** Wraps the batch round of targets that count D1 (the coordinator's): BENCH_PROFILE=batch profiles it alone. */
  aroundCoordinatorBatch: <T>(run: () => Promise<T>) => Promise<T> = (run) => run(),
): Promise<{ rounds: Round[]; roundTripsMs: number[][] }> {
  const fleets: Fleet[] = [];
  try {
    for (const target of targets) {
      const capability = `bench${n}-${Date.now().toString(36)}`;
      const tracker: Tracker = { received: new Map(), acked: new Map(), waiters: new Map() };
      fleets.push({ target, capability, tracker, bots: await startBots(target, n, capability, tracker) });
    }
    for (const f of fleets) if (f.target.countsD1) await d1Quiet(f.target); // the last round's closes are not this round's cost
    const countersBefore = await Promise.all(fleets.map((f) => (f.target.countsD1 ? coordinatorCounters(f.target) : null)));
    const toBotMs: number[][] = fleets.map(() => []);
    const roundTripsMs: number[][] = fleets.map(() => []);
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      for (let k = 0; k < fleets.length; k++) {
        const t = (i + k) % fleets.length;
        const sample = await oneTask(fleets[t]!, i);
        toBotMs[t]!.push(sample.toBotMs);
        roundTripsMs[t]!.push(sample.roundTripMs);
      }
    }
    const countersAfter = await Promise.all(fleets.map((f) => (f.target.countsD1 ? coordinatorCounters(f.target) : null)));
    const throughputs: Round["throughput"][] = [];
    for (const f of fleets) throughputs.push(await throughputRound(f));
    // Several batches per target, taken in turn like the latency samples: one batch lasts under a
    // second here, so one slow spell of the machine would otherwise decide it. The median one is reported.
    const batchesOf: BatchResult[][] = fleets.map(() => []);
    for (let k = 0; k < BATCH_ROUNDS; k++) {
      for (const [t, f] of fleets.entries()) {
        const run = () => batchRound(f.target, f.capability, f.tracker);
        batchesOf[t]!.push(await (f.target.countsD1 && k === 0 ? aroundCoordinatorBatch(run) : run()));
      }
    }
    const batches = batchesOf.map(medianBatch);
    const rounds = fleets.map((_, t): Round => {
      const [before, after] = [countersBefore[t] ?? null, countersAfter[t] ?? null];
      return {
        bots: n,
        d1_round_trips_per_task: counterPerTask(before, after, "roundTrips", LATENCY_SAMPLES),
        d1_rows_read_per_task: counterPerTask(before, after, "rowsRead", LATENCY_SAMPLES),
        bot_storage_writes_per_task: counterPerTask(before, after, "botStorageWrites", LATENCY_SAMPLES),
        d1_ms_per_task: counterPerTask(before, after, "d1WaitedMs", LATENCY_SAMPLES),
        create_to_bot: stats(toBotMs[t]!),
        round_trip: stats(roundTripsMs[t]!),
        throughput: throughputs[t]!,
        batch: batches[t]!,
      };
    });
    return { rounds, roundTripsMs };
  } finally {
    for (const f of fleets) for (const b of f.bots) b.stop();
  }
}

type BatchResult = Awaited<ReturnType<typeof batchRound>>;

/** The batch of median throughput, with every batch's tasks/s beside it. */
function medianBatch(results: BatchResult[]): BatchResult & { per_second_each: number[] } {
  const sorted = [...results].sort((a, b) => a.per_second - b.per_second);
  return { ...sorted[Math.floor(sorted.length / 2)]!, per_second_each: results.map((r) => r.per_second) };
}

/** `POST /tasks/batch` of the largest batch, created → every task completed (the floors serve the same call). */
export async function batchRound(h: Target, capability: string, tracker: Tracker) {
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
