/** Shared by the e2e tests and the benchmark: a coordinator on a free port plus API helpers. */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { type Coordinator, ROOT, startCoordinator } from "./coordinator";
import { removeRunState } from "./run-state";

export const E2E_ADMIN_TOKEN = "e2e-admin-token-abcdefghijklmnop";

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts something on a port picked now. A picked port is only free at the
 * moment it was checked (another process may take it before our server binds),
 * so a start that fails is retried on a fresh port, a bounded number of times.
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 4): Promise<T> {
  let lastError: unknown;
  for (let i = 0; i < attempts; i++) {
    try {
      return await start(await freePort());
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

export interface Harness {
  coordinator: Coordinator;
  port: number;
  persistDir: string;
  logFile: string;
  restart(): Promise<void>;
  /** Stops the coordinator and removes its persisted state (its log stays; KEEP_STATE=1 keeps everything). */
  stop(): Promise<void>;
  // biome-ignore lint/suspicious/noExplicitAny: e2e tests read response bodies of every shape
  api(method: string, p: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }>;
}

/** `vars` may depend on the port (URLs the coordinator must know about itself). */
export function startHarness(vars: Record<string, string> | ((port: number) => Record<string, string>) = {}): Promise<Harness> {
  return onFreePort((port) => startHarnessOn(port, typeof vars === "function" ? vars(port) : vars));
}

async function startHarnessOn(port: number, vars: Record<string, string>): Promise<Harness> {
  const persistDir = mkdtempSync(path.join(os.tmpdir(), "cbc-e2e-"));
  const logFile = path.join(persistDir, "wrangler.log");
  const allVars = { ADMIN_TOKEN: E2E_ADMIN_TOKEN, LOG_LEVEL: "warn", ...vars };
  const h: Harness = {
    coordinator: await startCoordinator({ port, persistDir, vars: allVars, logFile }),
    port,
    persistDir,
    logFile,
    async restart() {
      h.coordinator = await startCoordinator({ port, persistDir, vars: allVars, logFile });
    },
    async stop() {
      await h.coordinator.stop();
      removeRunState(persistDir);
    },
    api: (method, p, body) => adminCall(h.coordinator.url, method, p, body),
  };
  return h;
}

/** One JSON call to a server at `baseUrl` with the e2e admin token (bounded: 30 s). */
export async function adminCall(baseUrl: string, method: string, p: string, body?: unknown) {
  const res = await fetch(`${baseUrl}${p}`, {
    method,
    headers: { Authorization: `Bearer ${E2E_ADMIN_TOKEN}`, ...(body !== undefined ? { "Content-Type": "application/json" } : {}) },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(30_000),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: the callers assert on whatever JSON came back
  return { status: res.status, body: (text ? JSON.parse(text) : null) as any, headers: res.headers };
}

/**
 * Starts `node dist/bot.cjs` as a real bot process that registers itself (a new
 * bot each time, so it keeps no state file: there is nothing to resume).
 */
export function spawnBot(url: string, name: string, capabilities: string[], extra: string[] = [], logFile?: string): ChildProcess {
  const identity = ["--token", E2E_ADMIN_TOKEN, "--name", name, "--capabilities", capabilities.join(",")];
  return spawnBotProcess(["--url", url, ...identity, "--state-file", "none", ...extra], logFile);
}

/** Starts (or restarts) the bot process of an already registered bot, with its own token and state file. */
export function spawnRegisteredBot(
  url: string,
  bot: { id: string; token: string },
  stateFile: string,
  extra: string[] = [],
  logFile?: string,
): ChildProcess {
  return spawnBotProcess(["--url", url, "--bot-id", bot.id, "--token", bot.token, "--state-file", stateFile, ...extra], logFile);
}

function spawnBotProcess(args: string[], logFile?: string): ChildProcess {
  const child = spawn(process.execPath, [path.join(ROOT, "dist/bot.cjs"), ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  if (logFile) {
    const sink = createWriteStream(logFile, { flags: "a" });
    child.stdout!.pipe(sink);
    child.stderr!.pipe(sink);
  } else {
    child.stdout!.resume();
    child.stderr!.resume();
  }
  return child;
}

export { until } from "./wait";

/** Runs `fn` over `items` with at most `limit` in flight. */
export async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!, i);
      }
    }),
  );
  return out;
}
