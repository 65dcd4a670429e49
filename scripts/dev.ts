/**
 * `npm start`: the whole system locally.
 * - writes a random ADMIN_TOKEN to .dev.vars on first start (git-ignored), reuses it after;
 * - applies D1 migrations to the local database under .wrangler/state (CLAWBOT_STATE_DIR/state);
 * - runs `wrangler dev` in its own process group;
 * - calls the cron handler every minute (crons do not fire under wrangler dev);
 * - runs the SSH relay (port+2) and the provider/OpenRouter stand-ins (port+1) as local processes;
 * - prints where everything is. Ctrl-C stops it all;
 * - records the process groups it starts, so a run killed with SIGKILL leaves nothing that the
 *   next run does not stop first (scripts/lib/leftovers.ts).
 * - runs one local bot (capabilities openclaw, echo; the stand-in openclaw CLI) unless LOCAL_BOTS=0.
 * From the environment: PORT (default 8787), AUTH_MODE=open (local only, no auth),
 * CRON_INTERVAL_S (default 60), CLAWBOT_STATE_DIR (default .wrangler/; its own dev.vars when set), LOCAL_BOTS.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startStandins } from "../standins/server";
import { startTestSshServer } from "../standins/ssh-vps";
import { ROOT, startCoordinator, triggerCron } from "./lib/coordinator";
import { recordGroups, stopLeftovers } from "./lib/leftovers";
import { LOCAL_BOT_CAPABILITIES, startLocalBot } from "./lib/local-bot";
import { localDeployVars, localVpsHostKey, prepareLocalVps, stopLocalVpsBots } from "./lib/local-vps";

const CRON_INTERVAL_MS = Number(process.env.CRON_INTERVAL_S ?? 60) * 1000;
const port = Number(process.env.PORT ?? 8787);
const stateDir = process.env.CLAWBOT_STATE_DIR ? path.resolve(process.env.CLAWBOT_STATE_DIR) : path.join(ROOT, ".wrangler");
const persistDir = path.join(stateDir, "state");
const devVarsPath = process.env.CLAWBOT_STATE_DIR ? path.join(stateDir, "dev.vars") : path.join(ROOT, ".dev.vars");
const pidFile = path.join(stateDir, "npm-start.pids");
const vpsDir = path.join(stateDir, "local-vps");

/** Reads a secret from .dev.vars, or generates it there on first start (git-ignored, reused after). */
function ensureDevSecret(name: string, generate: () => string): string {
  const existing = existsSync(devVarsPath) ? readFileSync(devVarsPath, "utf8") : "";
  const match = new RegExp(`^${name}=(.+)$`, "m").exec(existing);
  if (match) return match[1]!.trim().replace(/^"|"$/g, "");
  const value = generate();
  writeFileSync(devVarsPath, `${existing}${existing && !existing.endsWith("\n") ? "\n" : ""}${name}=${value}\n`, { mode: 0o600 });
  return value;
}

/** The SSH relay as a local Node process (a Container in production), in its own process group. */
function startRelayProcess(port: number, secret: string): ChildProcess {
  const child = spawn(process.execPath, [path.join(ROOT, "relay/dist/relay.cjs")], {
    cwd: ROOT,
    detached: true,
    stdio: ["ignore", "inherit", "inherit"],
    // Local VPSes are SSH servers on 127.0.0.1, which a production relay refuses.
    env: { ...process.env, RELAY_SECRET: secret, RELAY_PORT: String(port), RELAY_HOST: "127.0.0.1", RELAY_ALLOW_PRIVATE_TARGETS: "1" },
  });
  return child;
}

async function main() {
  mkdirSync(stateDir, { recursive: true });
  // A run killed with SIGKILL left its children running: stop them before taking their ports.
  await stopLeftovers(pidFile, (msg) => console.log(msg));
  stopLocalVpsBots(vpsDir);
  const adminToken = ensureDevSecret("ADMIN_TOKEN", () => `cbc_admin_${randomBytes(24).toString("base64url")}`);
  const relaySecret = ensureDevSecret("RELAY_SECRET", () => randomBytes(32).toString("base64url"));
  const deploySecretKey = ensureDevSecret("DEPLOY_SECRET_KEY", () => randomBytes(32).toString("base64url"));
  // The local "VPS": a real SSH server on 127.0.0.1 that accepts the keys the provider stand-in installs.
  const vps = prepareLocalVps(vpsDir);
  const standins = await startStandins({
    port: port + 1,
    stateFile: path.join(stateDir, "standins.json"),
    vpsIp: "127.0.0.1",
    authorizedKeysFile: vps.authorizedKeysFile,
  });
  const relay = startRelayProcess(port + 2, relaySecret);
  const relayGroup = { pgid: relay.pid!, what: "the SSH relay", markers: ["relay.cjs"] };
  recordGroups(pidFile, [relayGroup]); // at once: a run killed while wrangler starts must not leak the relay
  const sshVps = await startTestSshServer({ file: vps.authorizedKeysFile }, { port: port + 3, hostKey: localVpsHostKey(vps.baseDir) });
  const deployVars = localDeployVars({
    paths: vps,
    coordinatorUrl: `http://127.0.0.1:${port}`,
    standinsUrl: standins.url,
    relayUrl: `http://127.0.0.1:${port + 2}`,
    sshPort: sshVps.port,
  });
  const authMode = process.env.AUTH_MODE === "open" ? "open" : "token";
  if (authMode === "open")
    console.warn("WARNING: AUTH_MODE=open — the API accepts requests without a token. Never use this outside local development.");
  console.log(`starting the coordinator on port ${port} (local D1 in ${path.relative(ROOT, persistDir)}) …`);
  // The secrets travel as vars too, so a CLAWBOT_STATE_DIR run does not depend on the repository's .dev.vars.
  const secrets = { ADMIN_TOKEN: adminToken, RELAY_SECRET: relaySecret, DEPLOY_SECRET_KEY: deploySecretKey };
  const coordinator = await startCoordinator({
    port,
    persistDir,
    vars: { AUTH_MODE: authMode, ...secrets, ...deployVars },
    logFile: "inherit",
    // Recorded before it is healthy: a run killed while wrangler starts must not leak it either.
    onSpawn: (child) =>
      recordGroups(pidFile, [{ pgid: child.pid!, what: "wrangler dev / workerd", markers: ["wrangler", "workerd"] }, relayGroup]),
  });

  const coordinatorGroup = { pgid: coordinator.process.pid!, what: "wrangler dev / workerd", markers: ["wrangler", "workerd"] };
  const localBot = process.env.LOCAL_BOTS === "0" ? null : await startLocalBot({ stateDir, url: coordinator.url, adminToken });
  if (localBot)
    recordGroups(pidFile, [coordinatorGroup, relayGroup, { pgid: localBot.child.pid!, what: "the local bot", markers: ["bot.cjs"] }]);

  const cron = setInterval(() => {
    triggerCron(coordinator.url).catch((err) =>
      console.error(JSON.stringify({ level: "warn", msg: "cron trigger failed", error: String(err) })),
    );
  }, CRON_INTERVAL_MS);

  console.log(`
  ClawBot Coordinator is running
    API        ${coordinator.url}/api/v1
    health     ${coordinator.url}/health
    API docs   ${coordinator.url}/docs   (OpenAPI: ${coordinator.url}/openapi.json)
    admin token ${adminToken}   (from .dev.vars)${authMode === "open" ? "\n    AUTH_MODE  open (no token needed)" : ""}
    SSH relay  http://127.0.0.1:${port + 2}   (local process; private targets allowed)
    local VPS  ssh://127.0.0.1:${sshVps.port}   (deployments "deliver" this machine; files in ${path.relative(ROOT, vpsDir)})
    stand-ins  ${standins.url}/hetzner/v1, /ovh/1.0, /openrouter/api/v1   (state: ${path.relative(ROOT, path.join(stateDir, "standins.json"))})
    local bot  ${localBot ? `${localBot.botId} (${LOCAL_BOT_CAPABILITIES.join(", ")}; stand-in openclaw; LOCAL_BOTS=0 turns it off)` : "off (LOCAL_BOTS=0)"}

  project:     curl -X POST ${coordinator.url}/api/v1/projects -H "Authorization: Bearer ${adminToken}" -H 'Content-Type: application/json' -d '{"name":"Shop","domain":"shop.example","description":"a shop","typeId":1}'
  deploy:      curl -X POST ${coordinator.url}/api/v1/deployments -H "Authorization: Bearer ${adminToken}" -H 'Content-Type: application/json' -d '{"name":"my-openclaw"}'
  run a bot:   npx clawbot-bot --url ${coordinator.url} --token ${adminToken} --name my-bot --capabilities python
  Ctrl-C stops everything.
`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    clearInterval(cron);
    console.log("stopping …");
    stopGroup(relay);
    if (localBot) stopGroup(localBot.child);
    stopLocalVpsBots(vpsDir);
    await sshVps.close();
    await standins.close();
    await coordinator.stop();
    rmSync(pidFile, { force: true });
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  process.on("SIGHUP", stop); // the terminal closed
  coordinator.process.once("exit", (code) => {
    if (stopping) return;
    console.error(`wrangler dev exited (${code}); stopping`);
    clearInterval(cron);
    stopGroup(relay);
    if (localBot) stopGroup(localBot.child);
    process.exit(1);
  });
}

function stopGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, "SIGTERM");
  } catch {
    /* already gone */
  }
}

main().catch((err) => {
  console.error(String(err?.stack ?? err));
  process.exit(1);
});
