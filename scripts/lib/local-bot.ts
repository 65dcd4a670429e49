/**
 * The bot `npm start` runs on this machine, so a newcomer's first project,
 * job or task runs without setting anything up: the shipped bot client with
 * the `openclaw` and `echo` capabilities, the stand-in `openclaw` CLI
 * (standins/openclaw.mjs) and its own directories under the state dir. Its id
 * and token are kept there too, so every start is the same bot. `LOCAL_BOTS=0`
 * turns it off.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./coordinator";

export const LOCAL_BOT_CAPABILITIES = ["openclaw", "echo"];

interface Identity {
  id: string;
  token: string;
}

async function api(url: string, adminToken: string, method: string, route: string, body?: unknown) {
  const res = await fetch(`${url}${route}`, {
    method,
    headers: { Authorization: `Bearer ${adminToken}`, ...(body ? { "Content-Type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(15_000),
  });
  return { status: res.status, body: (await res.json().catch(() => null)) as Record<string, unknown> | null };
}

/** The bot this state dir ran last time, if the coordinator still knows it; else a new one. */
async function identity(dir: string, url: string, adminToken: string): Promise<Identity> {
  const file = path.join(dir, "identity.json");
  if (existsSync(file)) {
    const kept = JSON.parse(readFileSync(file, "utf8")) as Identity;
    if ((await api(url, adminToken, "GET", `/api/v1/bots/${kept.id}`)).status === 200) return kept;
  }
  const created = await api(url, adminToken, "POST", "/api/v1/bots", {
    name: "local-bot",
    capabilities: LOCAL_BOT_CAPABILITIES,
    metadata: { started_by: "npm start" },
  });
  if (created.status !== 201) throw new Error(`could not register the local bot: ${JSON.stringify(created.body)}`);
  const fresh = { id: String(created.body!.id), token: String(created.body!.token) };
  writeFileSync(file, JSON.stringify(fresh), { mode: 0o600 });
  return fresh;
}

/** Starts the local bot in its own process group (stopped with it by npm start, or by the next start if killed). */
export async function startLocalBot(opts: {
  stateDir: string;
  url: string;
  adminToken: string;
}): Promise<{ child: ChildProcess; botId: string }> {
  const dir = path.join(opts.stateDir, "local-bot");
  mkdirSync(dir, { recursive: true });
  const bot = await identity(dir, opts.url, opts.adminToken);
  const child = spawn(
    process.execPath,
    [
      path.join(ROOT, "dist/bot.cjs"),
      ...["--url", opts.url, "--bot-id", bot.id, "--token", bot.token],
      ...["--openclaw-bin", path.join(ROOT, "standins/openclaw.mjs"), "--projects-dir", path.join(dir, "projects")],
      ...["--work-dir", path.join(dir, "work"), "--state-file", path.join(dir, "state.json"), "--heartbeat-s", "30"],
    ],
    { cwd: ROOT, detached: true, stdio: ["ignore", "inherit", "inherit"] },
  );
  return { child, botId: bot.id };
}
