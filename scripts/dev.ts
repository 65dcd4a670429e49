/**
 * `npm start`: the whole system locally.
 * - writes a random ADMIN_TOKEN to .dev.vars on first start (git-ignored), reuses it after;
 * - applies D1 migrations to the local database under .wrangler/state;
 * - runs `wrangler dev` in its own process group;
 * - calls the cron handler every minute (crons do not fire under wrangler dev);
 * - prints where everything is. Ctrl-C stops it all.
 * PORT (default 8787) and AUTH_MODE=open (local only, no auth) are read from the environment.
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { ROOT, startCoordinator, triggerCron } from "./lib/coordinator";

const CRON_INTERVAL_MS = 60_000;
const port = Number(process.env.PORT ?? 8787);
const persistDir = path.join(ROOT, ".wrangler/state");
const devVarsPath = path.join(ROOT, ".dev.vars");

function ensureAdminToken(): string {
  const existing = existsSync(devVarsPath) ? readFileSync(devVarsPath, "utf8") : "";
  const match = /^ADMIN_TOKEN=(.+)$/m.exec(existing);
  if (match) return match[1]!.trim().replace(/^"|"$/g, "");
  const token = `cbc_admin_${randomBytes(24).toString("base64url")}`;
  writeFileSync(devVarsPath, `${existing}${existing && !existing.endsWith("\n") ? "\n" : ""}ADMIN_TOKEN=${token}\n`, { mode: 0o600 });
  return token;
}

async function main() {
  const adminToken = ensureAdminToken();
  const authMode = process.env.AUTH_MODE === "open" ? "open" : "token";
  if (authMode === "open") console.warn("WARNING: AUTH_MODE=open — the API accepts requests without a token. Never use this outside local development.");
  console.log(`starting the coordinator on port ${port} (local D1 in ${path.relative(ROOT, persistDir)}) …`);
  const coordinator = await startCoordinator({ port, persistDir, vars: { AUTH_MODE: authMode }, logFile: "inherit" });

  const cron = setInterval(() => {
    triggerCron(coordinator.url).catch((err) => console.error(JSON.stringify({ level: "warn", msg: "cron trigger failed", error: String(err) })));
  }, CRON_INTERVAL_MS);

  console.log(`
  ClawBot Coordinator is running
    API        ${coordinator.url}/api/v1
    health     ${coordinator.url}/health
    API docs   ${coordinator.url}/docs   (OpenAPI: ${coordinator.url}/openapi.json)
    admin token ${adminToken}   (from .dev.vars)${authMode === "open" ? "\n    AUTH_MODE  open (no token needed)" : ""}

  run a bot:   npx clawbot-bot --url ${coordinator.url} --token ${adminToken} --name my-bot --capabilities python
  Ctrl-C stops everything.
`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(cron);
    console.log("stopping …");
    await coordinator.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  coordinator.process.once("exit", (code) => {
    if (stopping) return;
    console.error(`wrangler dev exited (${code}); stopping`);
    clearInterval(cron);
    process.exit(1);
  });
}

main().catch((err) => {
  console.error(String(err?.stack ?? err));
  process.exit(1);
});
