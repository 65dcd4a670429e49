/**
 * `BENCH_PROFILE=1 npm run bench`: a CPU profile of the coordinator (every
 * Worker and Durable Object of `wrangler dev` runs in one workerd isolate)
 * during its round with the most bots, taken through workerd's inspector, and
 * the functions that used the most of it by self time, written to
 * bench/profile.txt. `BENCH_PROFILE=batch`: the same, over the coordinator's
 * first batch only. `BENCH_PROFILE=perf`: all of workerd over that batch,
 * native frames included, with Linux perf (startPerfRecord). Loopback only.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { WebSocket } from "ws";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** The inspector's port under `BENCH_PROFILE=1` or `=batch` (BENCH_INSPECTOR_PORT moves it). */
export const DEFAULT_INSPECTOR_PORT = 9231;
/** How often perf samples workerd (Hz) under `BENCH_PROFILE=perf`. */
const PERF_FREQUENCY_HZ = 1999;
/** How long perf gets to attach before the measured work starts, and to write its file once stopped (ms). */
const PERF_SETTLE_MS = 500;
const PERF_EXIT_TIMEOUT_MS = 30_000;

/** How often the inspector samples the isolate's stack (µs). */
const SAMPLING_INTERVAL_US = 200;

export interface CpuProfiler {
  /** Stops and answers with the top functions by self time, one line each. */
  stop(): Promise<string>;
}

export async function startCpuProfile(inspectorPort: number): Promise<CpuProfiler> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json`)).json()) as { webSocketDebuggerUrl: string }[];
  const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => ws.once("open", resolve).once("error", reject));
  let nextId = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  ws.on("message", (data) => {
    const msg = JSON.parse(String(data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg.result);
  });
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = ++nextId;
      const timer = setTimeout(() => reject(new Error(`${method}: no answer from the inspector`)), 30_000);
      waiting.set(id, (result) => {
        clearTimeout(timer);
        resolve(result);
      });
      ws.send(JSON.stringify({ id, method, params }));
    });
  await call("Profiler.enable");
  await call("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
  await call("Profiler.start");
  return {
    async stop() {
      const { profile } = (await call("Profiler.stop")) as { profile: Profile };
      ws.close();
      // The whole profile too, for Chrome DevTools' Performance panel.
      writeFileSync(path.join(os.tmpdir(), "clawbot-coordinator.cpuprofile"), JSON.stringify(profile));
      return summarize(profile);
    },
  };
}

/**
 * `BENCH_PROFILE=perf`: Linux perf samples every thread of workerd — the runtime, the local D1 (a
 * Durable Object with SQLite inside workerd), the kernel's side of sockets and files — which the
 * inspector's profile of the isolate's JavaScript does not see (it saw about an eighth of workerd's CPU
 * in a batch). The summary is perf's own report: self time by binary, then inclusive time by symbol.
 * Needs `perf` (linux-perf) and perf_event_paranoid ≤ 2; the recording is left in the temp directory.
 */
export async function startPerfRecord(pids: number[]): Promise<CpuProfiler> {
  if (pids.length === 0) throw new Error("BENCH_PROFILE=perf: no workerd process to record");
  const file = path.join(os.tmpdir(), "clawbot-coordinator.perf.data");
  const perf = spawn("perf", ["record", "-F", String(PERF_FREQUENCY_HZ), "-g", "-o", file, "-p", pids.join(",")], { stdio: "ignore" });
  const exited = new Promise<number | null>((resolve, reject) => {
    perf.once("exit", resolve);
    perf.once("error", (err) => reject(new Error(`BENCH_PROFILE=perf: cannot run perf (${err.message})`)));
  });
  await Promise.race([exited.then(() => Promise.reject(new Error("BENCH_PROFILE=perf: perf ended at once"))), sleep(PERF_SETTLE_MS)]);
  return {
    async stop() {
      perf.kill("SIGINT");
      await Promise.race([exited, sleep(PERF_EXIT_TIMEOUT_MS).then(() => perf.kill("SIGKILL"))]);
      const perfOut = (...args: string[]) =>
        execFileSync("perf", [...args, "-i", file], { encoding: "utf8", maxBuffer: 256 << 20 })
          .split("\n")
          .filter((line) => line.trim() && !line.startsWith("#"));
      const byBinary = perfOut("report", "--stdio", "-g", "none", "--no-children", "--sort", "dso").slice(0, 6);
      const bySymbol = perfOut("report", "--stdio", "-g", "none", "--no-children", "--sort", "sym")
        .slice(0, 25)
        .map((line) => line.slice(0, 140));
      const stacks = perfStacks(execFileSync("perf", ["script", "-F", "ip,sym", "-i", file], { encoding: "utf8", maxBuffer: 256 << 20 }));
      const shares = PERF_CATEGORIES.map(([label, frames]) => {
        const within = stacks.filter((stack) => stack.some((frame) => frames.some((f) => frame.includes(f)))).length;
        return `${((100 * within) / Math.max(1, stacks.length)).toFixed(1).padStart(5)} %  ${label}`;
      });
      return [
        `perf record -F ${PERF_FREQUENCY_HZ} -g: ${stacks.length} samples (${file})`,
        "self time by binary:",
        ...byBinary,
        "samples whose stack is within (a sample may be in several):",
        ...shares,
        "self time by symbol:",
        ...bySymbol,
      ].join("\n");
    },
  };
}

/** Where workerd's time goes, by frames a stack holds: the local D1's SQL, the runtime's parts, the kernel's. */
const PERF_CATEGORIES: [string, string[]][] = [
  ["a SQLite statement (the local D1 and Durable Object storage)", ["sqlite3_step"]],
  ["  its statement journal (pages kept to undo a statement)", ["subjournalPageIfRequired"]],
  ["  its commit to the write-ahead log", ["pagerWalFrames"]],
  ["  B-tree inserts and deletes (rows and index entries)", ["sqlite3BtreeInsert", "sqlite3BtreeDelete"]],
  ["file writes and syncs (kernel)", ["__x64_sys_pwrite64", "__x64_sys_fsync", "__x64_sys_fdatasync"]],
  ["WebSocket frames", ["WebSocket"]],
  ["  permessage-deflate", ["deflate", "inflate"]],
  ["JavaScript RPC between objects", ["JsRpc"]],
  ["Cap'n Proto", ["capnp"]],
  ["JSON stringify and parse", ["JsonStringifier", "JsonParser"]],
  ["structured clone", ["ValueSerializer", "ValueDeserializer"]],
  ["garbage collection", ["Scavenger", "MarkCompact", "Heap::CollectGarbage"]],
  ["page faults", ["asm_exc_page_fault"]],
  ["TCP (kernel)", ["tcp_sendmsg", "tcp_recvmsg", "tcp_v4_rcv"]],
];

/** `perf script -F ip,sym` output (one indented frame per line, leaf first; a blank line ends a sample) as frame names per sample. */
function perfStacks(text: string): string[][] {
  return text
    .split(/\n\s*\n/)
    .map((sample) =>
      sample
        .split("\n")
        .map((line) => line.trim().split(/\s+/).slice(1).join(" "))
        .filter(Boolean),
    )
    .filter((stack) => stack.length > 0);
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Self time per function, the busiest first, as a share of the isolate's samples that were not idle;
 * then inclusive time (the function or anything it called: where a message's cost goes as a whole).
 *
 * Each sample counts one sampling interval, whatever its `timeDeltas` entry says: on this shared
 * machine the sampler's gaps run to a second and more (the process descheduled, or the isolate
 * waiting on I/O outside JavaScript), and weighting by them gave whichever function ran next to a gap
 * a tenth of the "time" (a query builder at 14%, a router at 6%, changing from run to run).
 */
export function summarize(profile: Profile, top = 30): string {
  profile = { ...profile, timeDeltas: profile.samples.map(() => SAMPLING_INTERVAL_US) };
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of profile.nodes) for (const child of n.children ?? []) parentOf.set(child, n.id);
  const nameOf = (n: ProfileNode) =>
    `${n.callFrame.functionName || "(anonymous)"} ${n.callFrame.url.split("/").pop() ?? ""}:${n.callFrame.lineNumber}`;
  const selfUs = new Map<string, number>();
  const inclusiveUs = new Map<string, number>();
  profile.samples.forEach((nodeId, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const name = nameOf(byId.get(nodeId)!);
    selfUs.set(name, (selfUs.get(name) ?? 0) + us);
    if (name.startsWith("(idle)")) return;
    const onStack = new Set<string>();
    // A stack is at most a few hundred frames deep; the bound keeps a malformed profile from looping.
    for (let id: number | undefined = nodeId, depth = 0; id !== undefined && depth < 1000; id = parentOf.get(id), depth++) {
      onStack.add(nameOf(byId.get(id)!));
    }
    for (const frame of onStack) inclusiveUs.set(frame, (inclusiveUs.get(frame) ?? 0) + us);
  });
  const idle = [...selfUs].filter(([name]) => name.startsWith("(idle)")).reduce((sum, [, us]) => sum + us, 0);
  const busy = [...selfUs.values()].reduce((sum, us) => sum + us, 0) - idle;
  const share = (us: number) => `${((100 * us) / busy).toFixed(1).padStart(5)} %`;
  const ranked = (m: Map<string, number>) =>
    [...m].filter(([name]) => !name.startsWith("(idle)") && !name.startsWith("(root)")).sort((a, b) => b[1] - a[1]);
  const byModule = new Map<string, number>();
  profile.samples.forEach((nodeId, i) => {
    const frame = byId.get(nodeId)!.callFrame;
    if (frame.functionName === "(idle)") return;
    const module = moduleOf(frame);
    byModule.set(module, (byModule.get(module) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  return [
    `${profile.samples.length} samples: busy ${(busy / 1000).toFixed(0)} ms (idle ${(idle / 1000).toFixed(0)} ms) at one sampling interval (${SAMPLING_INTERVAL_US} µs) each`,
    "self time by module (source file, or package under node_modules; native frames by name):",
    ...ranked(byModule)
      .slice(0, top)
      .map(([name, us]) => `${share(us)}  ${name}`),
    "self time:",
    ...ranked(selfUs)
      .slice(0, top)
      .map(([name, us]) => `${share(us)}  ${name}`),
    "inclusive time:",
    ...ranked(inclusiveUs)
      .slice(0, top * 2)
      .map(([name, us]) => `${share(us)}  ${name}`),
  ].join("\n");
}

/** Module boundaries of a bundle esbuild wrote (its `// path/to/file.ts` comments), by script URL. */
const bundleModules = new Map<string, { line: number; module: string }[]>();

/** The source file (or package) a frame's line belongs to; runtime frames keep their own name. */
function moduleOf(frame: ProfileNode["callFrame"]): string {
  if (!frame.url) return `(native) ${frame.functionName || "(anonymous)"}`;
  if (frame.url !== "index.js" && !frame.url.startsWith("file://")) return frame.url;
  let starts = bundleModules.get(frame.url);
  if (!starts) {
    const file = frame.url === "index.js" ? devBundle() : fileURLToPath(frame.url);
    starts = [];
    if (file && existsSync(file)) {
      readFileSync(file, "utf8")
        .split("\n")
        .forEach((text, line) => {
          const m = /^\/\/ ((?:src|node_modules|bench)\/\S+)$/.exec(text);
          if (m) starts!.push({ line, module: packageOf(m[1]!) });
        });
    }
    bundleModules.set(frame.url, starts);
  }
  // The last boundary at or before the frame's line (starts are in line order).
  let lo = 0;
  let hi = starts.length - 1;
  let found = "(bundle)";
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (starts[mid]!.line <= frame.lineNumber) {
      found = starts[mid]!.module;
      lo = mid + 1;
    } else hi = mid - 1;
  }
  return found;
}

/** `node_modules/@scope/pkg/x.js` → `@scope/pkg`, `node_modules/pkg/x.js` → `pkg`; sources keep their path. */
function packageOf(file: string): string {
  const m = /^node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(file);
  return m ? m[1]! : file;
}

/**
 * The Worker's bundle under `wrangler dev` (workerd names it `index.js`): the newest
 * `.wrangler/tmp/dev-*\/index.js`, which wrangler removes when it stops (the profile is read before).
 */
function devBundle(): string | null {
  const tmp = path.join(process.cwd(), ".wrangler", "tmp");
  if (!existsSync(tmp)) return null;
  const bundles = readdirSync(tmp)
    .filter((d) => d.startsWith("dev-"))
    .map((d) => path.join(tmp, d, "index.js"))
    .filter((f) => existsSync(f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  return process.env.BENCH_PROFILE_BUNDLE ?? bundles[0] ?? null;
}
