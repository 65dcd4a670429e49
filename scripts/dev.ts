/**
 * `npm start`: the whole system locally.
 * - writes a random ADMIN_TOKEN to .dev.vars on first start (git-ignored), reuses it after;
 * - applies D1 migrations to the local database under .wrangler/state;
 * - runs `wrangler dev` in its own process group;
 * - calls the cron handler every minute (crons do not fire under wrangler dev);
 * - runs the SSH relay (port+2) and the provider/OpenRouter stand-ins (port+1) as local processes;
 * - prints where everything is. Ctrl-C stops it all.
 * PORT (default 8787) and AUTH_MODE=open (local only, no auth) are read from the environment.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { startStandins } from "../standins/server";
import { startTestSshServer } from "../standins/ssh-vps";
import { ROOT, startCoordinator, triggerCron } from "./lib/coordinator";
import { localDeployVars, localVpsHostKey, prepareLocalVps } from "./lib/local-vps";

const CRON_INTERVAL_MS = 60_000;
const port = Number(process.env.PORT ?? 8787);
const persistDir = path.join(ROOT, ".wrangler/state");
const devVarsPath = path.join(ROOT, ".dev.vars");

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
  const adminToken = ensureDevSecret("ADMIN_TOKEN", () => `cbc_admin_${randomBytes(24).toString("base64url")}`);
  const relaySecret = ensureDevSecret("RELAY_SECRET", () => randomBytes(32).toString("base64url"));
  ensureDevSecret("DEPLOY_SECRET_KEY", () => randomBytes(32).toString("base64url"));
  // The local "VPS": a real SSH server on 127.0.0.1 that accepts the keys the provider stand-in installs.
  const vps = prepareLocalVps(path.join(ROOT, ".wrangler/local-vps"));
  const standins = await startStandins({
    port: port + 1,
    stateFile: path.join(ROOT, ".wrangler/standins.json"),
    vpsIp: "127.0.0.1",
    authorizedKeysFile: vps.authorizedKeysFile,
  });
  const relay = startRelayProcess(port + 2, relaySecret);
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
  const coordinator = await startCoordinator({ port, persistDir, vars: { AUTH_MODE: authMode, ...deployVars }, logFile: "inherit" });

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
    local VPS  ssh://127.0.0.1:${sshVps.port}   (deployments "deliver" this machine; files in .wrangler/local-vps)
    stand-ins  ${standins.url}/hetzner/v1, /ovh/1.0, /openrouter/api/v1   (state: .wrangler/standins.json)

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
    await sshVps.close();
    await standins.close();
    await coordinator.stop();
    process.exit(0);
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  coordinator.process.once("exit", (code) => {
    if (stopping) return;
    console.error(`wrangler dev exited (${code}); stopping`);
    clearInterval(cron);
    stopGroup(relay);
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
