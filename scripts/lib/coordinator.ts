/**
 * Starts and stops a local coordinator (`wrangler dev` + local D1 with
 * migrations applied) for `npm start`, the e2e tests and the benchmark.
 * wrangler runs in its own process group: stopping kills the whole group, or
 * an orphan `workerd` would keep the port.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
const WRANGLER = path.join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const DEV_RUNNER = path.join(ROOT, "scripts/lib/wrangler-dev.mjs");
export const CRON = "* * * * *";

export interface CoordinatorOptions {
  port: number;
  persistDir: string;
  /** Extra vars for wrangler dev (`--var KEY:VALUE`), e.g. ADMIN_TOKEN in tests. */
  vars?: Record<string, string>;
  /** Where wrangler's output goes; "inherit" prints it. */
  logFile?: string | "inherit";
  startTimeoutMs?: number;
  /** Called as soon as wrangler is spawned, before it is healthy (npm start records its process group). */
  onSpawn?: (child: ChildProcess) => void;
  /** Another Worker (a wrangler.toml path): the benchmark's platform floor. It has no D1, so no migrations. */
  config?: string;
  /** Where "up" is checked (default /health). */
  healthPath?: string;
}

export interface Coordinator {
  url: string;
  process: ChildProcess;
  /** Graceful stop of the process group (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
  /** kill -9 of the whole group, as a crash would. */
  kill(): Promise<void>;
}

const quietEnv = () => ({
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: process.env.CI ?? "true",
  NO_COLOR: "1",
  FORCE_COLOR: "0",
});

export function applyMigrations(persistDir: string): void {
  mkdirSync(persistDir, { recursive: true });
  const res = spawnSync(process.execPath, [WRANGLER, "d1", "migrations", "apply", "clawbot", "--local", "--persist-to", persistDir], {
    cwd: ROOT,
    env: quietEnv(),
    encoding: "utf8",
    timeout: 120_000,
  });
  if (res.status !== 0) throw new Error(`migrations failed (${res.status}): ${res.stderr || res.stdout}`);
}

export async function startCoordinator(opts: CoordinatorOptions): Promise<Coordinator> {
  if (!opts.config) applyMigrations(opts.persistDir);
  // wrangler dev through its API, without the devtools inspector (scripts/lib/wrangler-dev.mjs says why).
  const args = [
    DEV_RUNNER,
    "--config",
    opts.config ?? path.join(ROOT, "wrangler.toml"),
    "--ip",
    "127.0.0.1",
    "--port",
    String(opts.port),
    "--persist-to",
    opts.persistDir,
    // `BENCH_PROFILE=1 npm run bench` profiles the coordinator's CPU through workerd's inspector (bench/profile.ts).
    ...(process.env.CLAWBOT_INSPECTOR_PORT && !opts.config ? ["--inspector-port", process.env.CLAWBOT_INSPECTOR_PORT] : []),
  ];
  for (const [k, v] of Object.entries(opts.vars ?? {})) args.push("--var", `${k}:${v}`);
  const child = spawn(process.execPath, args, { cwd: ROOT, env: quietEnv(), detached: true, stdio: ["ignore", "pipe", "pipe"] });
  opts.onSpawn?.(child);
  if (opts.logFile === "inherit") {
    child.stdout!.pipe(process.stdout);
    child.stderr!.pipe(process.stderr);
  } else {
    const sink = createWriteStream(opts.logFile ?? "/dev/null", { flags: "a" });
    child.stdout!.pipe(sink);
    child.stderr!.pipe(sink);
  }
  const url = `http://127.0.0.1:${opts.port}`;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, signal);
    } catch {
      /* already gone */
    }
  };
  const coordinator: Coordinator = {
    url,
    process: child,
    async stop() {
      signalGroup("SIGTERM");
      const timer = setTimeout(() => signalGroup("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      signalGroup("SIGKILL"); // anything left in the group (workerd)
    },
    async kill() {
      signalGroup("SIGKILL");
      await exited;
    },
  };
  try {
    await waitForHealth(`${url}${opts.healthPath ?? "/health"}`, opts.startTimeoutMs ?? 90_000, exited);
  } catch (err) {
    await coordinator.stop();
    throw err;
  }
  return coordinator;
}

async function waitForHealth(url: string, timeoutMs: number, exited: Promise<void>): Promise<void> {
  let dead = false;
  void exited.then(() => (dead = true));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (dead) throw new Error("wrangler dev exited before it became healthy (see its log)");
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
      if (res.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`coordinator at ${url} not healthy within ${timeoutMs}ms`);
}

/** Runs the cron handler now (crons do not fire under wrangler dev). */
export async function triggerCron(url: string): Promise<number> {
  const res = await fetch(`${url}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(CRON)}`, { signal: AbortSignal.timeout(30_000) });
  return res.status;
}
