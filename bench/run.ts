/**
 * `npm run bench`: task round trip and throughput through a real `wrangler dev`
 * coordinator with N in-process bot clients (real WebSockets over loopback),
 * side by side with two floors serving the same protocol on the same machine
 * (a plain Node server; one Worker + Durable Object under `wrangler dev`).
 *
 * round trip = POST /tasks → the bot receives task_assigned → the bot's
 * completion is acknowledged (committed to D1, so visible to GET /tasks/{id}).
 * Writes bench/results.json and prints a table. Loopback only; every loop is bounded.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { WebSocket, WebSocketServer } from "ws";
import { ROOT, startCoordinator } from "../scripts/lib/coordinator";
import { E2E_ADMIN_TOKEN, onFreePort, startHarness } from "../scripts/lib/harness";
import { removeRunDir } from "../scripts/lib/run-state";
import { workerdPids } from "./cpu";
import { eventLatency } from "./events";
import { startNodeFloor } from "./floor/node-server";
import { DEFAULT_INSPECTOR_PORT, startCpuProfile, startPerfRecord } from "./profile";
import {
  BATCH_ROUNDS,
  d1Budget,
  expectStatus,
  LATENCY_SAMPLES,
  now,
  pairedRounds,
  type Round,
  round,
  show,
  stats,
  targetAt,
} from "./rounds";
import { fleetSweep } from "./sweeper";

const BOT_COUNTS = (process.env.BENCH_BOTS ?? "1,10,50").split(",").map(Number);
const FLEET_REGISTERED = Number(process.env.BENCH_FLEET_BOTS ?? 10_000);
const FLEET_CONNECTED = Number(process.env.BENCH_FLEET_CONNECTED ?? 1_000);

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

const ratio = (a: number | null, b: number | null) => (a === null || b === null || b === 0 ? null : round(a / b));

/** The median of a[i] ÷ b[i]: samples taken side by side, compared pair by pair. */
function medianRatio(a: number[], b: number[]): number | null {
  const ratios = a.map((x, i) => x / b[i]!).sort((x, y) => x - y);
  return ratios.length === 0 ? null : round(ratios[Math.floor(ratios.length / 2)]!);
}

async function main() {
  const started = new Date();
  console.log("ws echo floor …");
  const echo = await wsEchoFloor(10, LATENCY_SAMPLES);

  // The three targets run side by side, so every latency sample of each is taken beside the others' (rounds.ts).
  const node = await startNodeFloor();
  console.log("starting the platform floor (wrangler dev, one Durable Object with SQLite) …");
  const floorDir = mkdtempSync(path.join(os.tmpdir(), "cbc-floor-"));
  const platform = await onFreePort((port) =>
    startCoordinator({ port, persistDir: floorDir, config: path.join(ROOT, "bench/floor/wrangler.toml"), logFile: "/dev/null" }),
  );
  console.log("starting the coordinator (wrangler dev) …");
  // BENCH_D1_GROUP_COMMIT=off measures the coordinator without group commit (on by default, as in config.ts).
  const profileMode = process.env.BENCH_PROFILE ?? "";
  const profilePort =
    profileMode === "1" || profileMode === "batch" ? Number(process.env.BENCH_INSPECTOR_PORT ?? DEFAULT_INSPECTOR_PORT) : null;
  if (profilePort !== null) process.env.CLAWBOT_INSPECTOR_PORT = String(profilePort);
  const h = await startHarness({ LOG_LEVEL: "error", BENCH_MODE: "1", D1_GROUP_COMMIT: process.env.BENCH_D1_GROUP_COMMIT ?? "on" });
  const coordinator = targetAt("coordinator", h.coordinator.url, true, h.coordinator.process.pid);
  let floorsRunning = true;
  const stopFloors = async () => {
    if (!floorsRunning) return;
    floorsRunning = false;
    await node.close();
    await platform.stop();
    removeRunDir(floorDir);
  };
  const targets = [targetAt("node floor", node.url), targetAt("platform floor", platform.url, false, platform.process.pid), coordinator];
  const [nodeRounds, platformRounds, coordinatorRounds]: Round[][] = [[], [], []];
  /** Per bot count: the median over samples of the coordinator's round trip ÷ the platform floor's taken beside it. */
  const pairedPlatformRatios: (number | null)[] = [];
  let workerFloor: ReturnType<typeof stats> | null = null;
  let budget: Awaited<ReturnType<typeof d1Budget>> | null = null;
  const events: { watchers: number; latency: ReturnType<typeof stats> }[] = [];
  let fleet: Awaited<ReturnType<typeof fleetSweep>> | null = null;
  try {
    for (const n of BOT_COUNTS) {
      console.log(`node floor, platform floor and coordinator with ${n} bot(s) each, side by side …`);
      // BENCH_PROFILE (bench/profile.ts) profiles the round with the most bots: =1 the isolate's JavaScript
      // through the whole round; =batch that JavaScript in the coordinator's first batch; =perf all of
      // workerd (native frames: the runtime, the local D1, the kernel) in that batch, with Linux perf.
      const profiled = profileMode !== "" && n === Math.max(...BOT_COUNTS);
      const writeProfile = (what: string, summary: string) => {
        const header = `coordinator, ${n} bots, ${what}, ${new Date().toISOString()}, commit ${commitOf()} (BENCH_PROFILE=${profileMode})`;
        writeFileSync(path.join(ROOT, "bench/profile.txt"), `${header}\n${summary}\n`);
        console.log("CPU profile written to bench/profile.txt");
      };
      const aroundBatch = async <T>(run: () => Promise<T>): Promise<T> => {
        if (!profiled || (profileMode !== "batch" && profileMode !== "perf")) return run();
        const profiler =
          profileMode === "perf"
            ? await startPerfRecord(workerdPids(h.coordinator.process.pid ?? -1))
            : await startCpuProfile(profilePort ?? DEFAULT_INSPECTOR_PORT);
        const result = await run();
        writeProfile(
          `its first batch (${profileMode === "perf" ? "perf, all of workerd" : "its isolate's JavaScript"})`,
          await profiler.stop(),
        );
        return result;
      };
      const wholeRound = profiled && profileMode === "1" && profilePort !== null ? await startCpuProfile(profilePort) : null;
      const { rounds, roundTripsMs } = await pairedRounds(targets, n, aroundBatch);
      if (wholeRound) writeProfile("the whole round (its isolate's JavaScript)", await wholeRound.stop());
      nodeRounds.push(rounds[0]!);
      platformRounds.push(rounds[1]!);
      coordinatorRounds.push(rounds[2]!);
      pairedPlatformRatios.push(medianRatio(roundTripsMs[2]!, roundTripsMs[1]!));
    }
    await stopFloors(); // the rest measures the coordinator alone
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
      fleet = await fleetSweep(h.coordinator.url, coordinator.api, { registered: FLEET_REGISTERED, connected: FLEET_CONNECTED, sweeps: 3 });
    }
  } finally {
    try {
      await stopFloors();
    } finally {
      await h.stop();
    }
  }

  const compared = coordinatorRounds.map((r, i) => {
    const p = platformRounds[i]!;
    const nf = nodeRounds[i]!;
    return {
      bots: r.bots,
      vs_platform_floor: {
        round_trip_p50: ratio(r.round_trip.p50_ms, p.round_trip.p50_ms),
        /** The median of each sample's ratio to the floor's sample taken beside it. */
        round_trip_paired_median: pairedPlatformRatios[i] ?? null,
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
    method: `Each setup serves the same protocol (POST /tasks, the bot WebSocket, seed 001 messages) on 127.0.0.1; bots are in-process BotClient instances over real WebSockets; latency = one task at a time (create → task_assigned → task_complete acked), the three setups running side by side and each sample of each taken in turn with the others' (rounds.ts), so a slow spell of the machine falls on all alike; throughput = many tasks in flight; batch = POST /tasks/batch of 500, created → every task completed, ${BATCH_ROUNDS} batches per target taken in turn, the median reported (per_second_each: all of them). Platform floor: wrangler dev, one Durable Object with the queue in its SQLite (bench/floor/worker.ts). Node floor: one Node process, state in memory (bench/floor/node-server.ts).`,
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
      const each = r.batch.per_second_each.map(Math.round).join(" / ");
      console.log(
        `| ${name}, POST /tasks/batch of ${r.batch.tasks} | ${r.bots} | – | – | ${r.batch.per_second}${d1}, median of ${each} | ${vs} |`,
      );
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
    `round trip ÷ the platform floor's sample taken beside it, median over samples: ${compared.map((c) => `${c.vs_platform_floor.round_trip_paired_median ?? "n/a"}× (${c.bots} bots)`).join(", ")}`,
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

/** The commit the bench runs (for the profile's header); "unknown" outside a git checkout. */
function commitOf(): string {
  try {
    return execFileSync("git", ["rev-parse", "--short", "HEAD"], { cwd: ROOT, encoding: "utf8" }).trim();
  } catch {
    return "unknown";
  }
}
