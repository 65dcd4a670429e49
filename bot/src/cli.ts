/**
 * clawbot-bot: run a bot against a coordinator.
 *
 *   clawbot-bot --url http://127.0.0.1:8787 --bot-id <id> --token <bot token>
 *   clawbot-bot --url http://127.0.0.1:8787 --token <admin token> --name b1 --capabilities python,docker
 *
 * With --bot-id, --token is the bot's own token. Without it, --token must be an
 * admin token: the bot registers itself and prints its id and token once.
 */
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { BotClient } from "./client";
import { echoHandler, parseShellRules, shellHandler } from "./handlers";
import { openclawHandler } from "./openclaw";

const { values } = parseArgs({
  options: {
    url: { type: "string", default: process.env.CLAWBOT_URL },
    token: { type: "string", default: process.env.CLAWBOT_TOKEN },
    "bot-id": { type: "string", default: process.env.CLAWBOT_BOT_ID },
    name: { type: "string", default: process.env.CLAWBOT_NAME },
    capabilities: { type: "string", default: process.env.CLAWBOT_CAPABILITIES ?? "" },
    "allow-shell": { type: "string", default: process.env.CLAWBOT_ALLOW_SHELL ?? "" },
    "work-dir": { type: "string", default: process.env.CLAWBOT_WORK_DIR ?? path.join(os.homedir(), "clawbot-work") },
    "state-file": { type: "string", default: process.env.CLAWBOT_STATE_FILE },
    "openclaw-bin": { type: "string", default: process.env.CLAWBOT_OPENCLAW_BIN ?? "openclaw" },
    "projects-dir": { type: "string", default: process.env.CLAWBOT_PROJECTS_DIR ?? path.join(os.homedir(), "openclaw-projects") },
    "openclaw-timeout-s": { type: "string", default: process.env.CLAWBOT_OPENCLAW_TIMEOUT_S ?? "600" },
    "default-handler": { type: "string", default: "echo" },
    "heartbeat-s": { type: "string", default: "30" },
    help: { type: "boolean", short: "h", default: false },
  },
});

function usage(code: number): never {
  console.log(`usage: clawbot-bot --url <coordinator> (--bot-id <id> --token <bot token> | --token <admin token> [--name n] [--capabilities a,b])
  --allow-shell uname,git:status|log   what the 'shell' handler may run: a command alone takes no arguments;
                           command:REGEX lets each argument match REGEX in full (none by default)
  --work-dir DIR           where shell commands run (default ~/clawbot-work)
  --state-file PATH        where results not yet acknowledged and finished task ids survive a restart
                           (default ~/.local/state/clawbot/bot-<id>.json; "none": memory only)
  --openclaw-bin PATH      the OpenClaw CLI the 'openclaw' handler runs (default: openclaw on PATH)
  --projects-dir DIR       where the 'openclaw' handler keeps projects (default ~/openclaw-projects)
  --openclaw-timeout-s 600 the longest an 'openclaw' run may take (default 10 minutes)
  --default-handler echo   handler for payloads that do not name one
  --heartbeat-s 30         heartbeat interval
env: CLAWBOT_URL, CLAWBOT_TOKEN, CLAWBOT_BOT_ID, CLAWBOT_NAME, CLAWBOT_CAPABILITIES, CLAWBOT_ALLOW_SHELL, CLAWBOT_STATE_FILE,
     CLAWBOT_OPENCLAW_BIN, CLAWBOT_PROJECTS_DIR, CLAWBOT_OPENCLAW_TIMEOUT_S`);
  process.exit(code);
}

async function register(url: string, adminToken: string, name: string, capabilities: string[]) {
  const res = await fetch(new URL("/api/v1/bots", url), {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${adminToken}` },
    body: JSON.stringify({ name, capabilities, metadata: { client: "clawbot-bot", host: process.env.HOSTNAME ?? null } }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await res.json()) as { id?: string; token?: string; error?: { message: string } };
  if (res.status !== 201 || !body.id || !body.token)
    throw new Error(`registration failed (${res.status}): ${body.error?.message ?? "unknown error"}`);
  console.log(
    JSON.stringify({ level: "info", msg: "registered; keep this token, it is shown once", bot_id: body.id, bot_token: body.token }),
  );
  return { id: body.id, token: body.token };
}

async function main() {
  if (values.help) usage(0);
  if (!values.url || !values.token) usage(2);
  const capabilities = values
    .capabilities!.split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  const identity = values["bot-id"]
    ? { id: values["bot-id"], token: values.token }
    : await register(values.url, values.token, values.name ?? `bot-${process.pid}`, capabilities);
  const allow = parseShellRules(values["allow-shell"]!);
  const workDir = values["work-dir"]!;
  const stateFile =
    values["state-file"] === "none"
      ? null
      : (values["state-file"] ?? path.join(os.homedir(), ".local", "state", "clawbot", `bot-${identity.id}.json`));
  const client = new BotClient({
    url: values.url,
    botId: identity.id,
    token: identity.token,
    handlers: {
      echo: echoHandler,
      shell: shellHandler({ allow, timeoutMs: 10 * 60_000, maxOutputBytes: 64 * 1024, workDir }),
      openclaw: openclawHandler({
        bin: values["openclaw-bin"]!,
        projectsDir: values["projects-dir"]!,
        maxTimeoutMs: Number(values["openclaw-timeout-s"]) * 1000,
      }),
    },
    defaultHandler: values["default-handler"],
    heartbeatIntervalMs: Number(values["heartbeat-s"]) * 1000,
    stateFile,
    // Deleted or refused: exit, so a service manager does not keep a dead bot around.
    onStopped: (reason) => setTimeout(() => process.exit(reason === "stopped" || reason === "bot deleted" ? 0 : 2), 100).unref(),
  });
  const stop = () => {
    client.stop();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  await client.start();
}

main().catch((err) => {
  console.error(JSON.stringify({ level: "error", msg: String(err?.message ?? err) }));
  process.exit(1);
});
