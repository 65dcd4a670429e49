/** The generated setup script, run for real with bash: markers, callback, idempotent onboard, detached bot. */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSetupScript, type SetupScriptInput, shellQuote } from "../../src/core/setup-script";

/** The stand-in bot client the test server serves (it ends by itself, so a failed test leaves nothing behind). */
const BOT_SOURCE = "setTimeout(() => {}, 30000); // stand-in bot client\n";
let base: string;
let callbacks: { auth: string | undefined; body: any }[] = [];
let server: ReturnType<typeof createServer>;
let url: string;
/** Downloads of the bot client to cut in the middle (a coordinator killed while serving it). */
let cutDownloads = 0;

beforeAll(async () => {
  server = createServer((req, res) => {
    let raw = "";
    req.on("data", (d) => (raw += d));
    req.on("end", () => {
      if (req.url === "/bot/clawbot-bot.cjs") {
        if (cutDownloads > 0) {
          cutDownloads--;
          res.writeHead(200, { "Content-Length": String(BOT_SOURCE.length) });
          res.write(BOT_SOURCE.slice(0, 10));
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        }
        res.end(BOT_SOURCE);
        return;
      }
      callbacks.push({ auth: req.headers.authorization, body: JSON.parse(raw || "{}") });
      res.end("{}");
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
});
afterAll(() => new Promise((r) => server.close(r)));

function setup(over: Partial<SetupScriptInput> = {}) {
  base = mkdtempSync(path.join(os.tmpdir(), "cbc-setup-"));
  const home = path.join(base, "home");
  mkdirSync(home);
  const openclaw = path.join(base, "openclaw");
  // Stand-in OpenClaw CLI: counts onboard runs and writes its config like the real one.
  writeFileSync(
    openclaw,
    `#!/bin/bash\necho "$@" >> ${base}/openclaw-calls\nmkdir -p "$HOME/.openclaw" && echo '{}' > "$HOME/.openclaw/openclaw.json"\n`,
  );
  chmodSync(openclaw, 0o755);
  const input: SetupScriptInput = {
    deploymentId: "dep-1",
    coordinatorUrl: url,
    callbackUrl: `${url}/callback`,
    callbackToken: "cb-token",
    botId: "bot-1",
    botToken: "bot-token",
    openrouterKey: "sk-or-v1-x",
    markerDir: path.join(base, "markers"),
    installDir: path.join(base, "install"),
    openclawBin: openclaw,
    botCapabilities: ["openclaw"],
    botBundleSha256: createHash("sha256").update(BOT_SOURCE).digest("hex"),
    ...over,
  };
  const script = path.join(base, "setup.sh");
  writeFileSync(script, buildSetupScript(input));
  return { input, script, home };
}

/** Async: the callback server runs in this process and must keep answering while the script runs. */
function run(script: string, home: string): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("bash", [script], {
      env: { PATH: process.env.PATH!, HOME: home } as unknown as NodeJS.ProcessEnv,
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.on("close", (status) => {
      clearTimeout(timer);
      resolve({ status, stderr });
    });
  });
}
const killBot = () => {
  const pidFile = path.join(base, "install/bot.pid");
  if (existsSync(pidFile)) spawnSync("kill", [readFileSync(pidFile, "utf8").trim()]);
};

describe("setup script", () => {
  it("two launches at once (a relaunch after a crash mid-launch) do not trip over each other", async () => {
    callbacks = [];
    const { input, script, home } = setup();
    // Several rounds: the collision window is small.
    for (let round = 0; round < 5; round++) {
      const [a, b] = await Promise.all([run(script, home), run(script, home)]);
      expect(a.status, a.stderr).toBe(0);
      expect(b.status, b.stderr).toBe(0);
      expect(existsSync(path.join(input.markerDir, ".openclaw-setup-error"))).toBe(false);
      expect(readFileSync(path.join(input.markerDir, ".openclaw-setup-complete"), "utf8").trim()).toBe("COMPLETE");
    }
    killBot();
  });

  it("a download of the bot client cut in the middle (the coordinator restarting) is tried again, and the bot installs", async () => {
    callbacks = [];
    cutDownloads = 1;
    const { input, script, home } = setup();
    const result = await run(script, home);
    expect(result.status, result.stderr).toBe(0);
    expect(cutDownloads).toBe(0); // the cut download did happen
    expect(existsSync(path.join(input.markerDir, ".openclaw-setup-error"))).toBe(false);
    expect(readFileSync(path.join(input.markerDir, ".openclaw-setup-complete"), "utf8").trim()).toBe("COMPLETE");
    expect(readFileSync(path.join(input.installDir, "clawbot-bot.cjs"), "utf8")).toBe(BOT_SOURCE);
    killBot();
  }, 30_000);

  it("is valid bash and quotes hostile values safely; bot.env refuses what bash and systemd would read differently", () => {
    const hostile = `/opt/it's"; rm -rf / #$(id)`;
    const { script } = setup({ openclawBin: hostile });
    execFileSync("bash", ["-n", script]);
    expect(readFileSync(script, "utf8")).toContain(`OPENCLAW_BIN=${shellQuote(hostile)}`);
    expect(() => setup({ botToken: `it's"; rm -rf / #$(id)` })).toThrow(/bot.env/);
    expect(() => setup({ openrouterKey: "sk-or-v1-x\nEVIL=1" })).toThrow(/bot.env/);
    expect(spawnSync("bash", ["-c", `printf '%s' ${shellQuote(`a'b"c$d`)}`], { encoding: "utf8" }).stdout).toBe(`a'b"c$d`);
  });

  it("installs and starts the bot, writes the markers and calls back, and re-runs idempotently", async () => {
    callbacks = [];
    const { input, script, home } = setup();
    const first = await run(script, home);
    expect(first.status, first.stderr).toBe(0);
    const marker = (name: string) => readFileSync(path.join(input.markerDir, name), "utf8").trim();
    expect(marker(".openclaw-setup-started")).toBe("STARTED");
    expect(marker(".openclaw-setup-complete")).toBe("COMPLETE");
    expect(marker(".openclaw-setup-token")).toBe("bot-1");
    expect(existsSync(path.join(input.markerDir, ".openclaw-setup-error"))).toBe(false);
    expect(readFileSync(path.join(input.installDir, "bot.env"), "utf8")).toContain("CLAWBOT_BOT_ID='bot-1'");
    expect(readFileSync(path.join(input.installDir, "clawbot-bot.cjs"), "utf8")).toContain("stand-in bot client");
    const pid = Number(readFileSync(path.join(input.installDir, "bot.pid"), "utf8"));
    expect(() => process.kill(pid, 0)).not.toThrow(); // the bot runs detached (no systemd here)
    expect(callbacks.every((c) => c.auth === "Bearer cb-token")).toBe(true);
    expect(callbacks.map((c) => c.body.event)).toContain("complete");
    expect(callbacks.filter((c) => c.body.event === "progress").length).toBeGreaterThan(2);

    const second = await run(script, home);
    expect(second.status, second.stderr).toBe(0);
    expect(readFileSync(path.join(base, "openclaw-calls"), "utf8").trim().split("\n")).toHaveLength(1); // onboard once
    // The older bot was replaced (give the signal a moment; a dead process leaves /proc/<pid> or turns zombie).
    const gone = async () => {
      for (let i = 0; i < 40; i++) {
        const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, "utf8") : "";
        if (!stat || / Z /.test(stat)) return true;
        await new Promise((r) => setTimeout(r, 50));
      }
      return false;
    };
    expect(await gone()).toBe(true);
    expect(Number(readFileSync(path.join(input.installDir, "bot.pid"), "utf8"))).not.toBe(pid);
    killBot();
  });

  it("refuses to run a bot client whose SHA-256 is not the coordinator's: error marker, nothing started", async () => {
    callbacks = [];
    const { input, script, home } = setup({ botBundleSha256: "0".repeat(64) });
    const res = await run(script, home);
    expect(res.status).not.toBe(0);
    expect(readFileSync(path.join(input.markerDir, ".openclaw-setup-error"), "utf8")).toContain("does not match its SHA-256");
    expect(existsSync(path.join(input.installDir, "clawbot-bot.cjs"))).toBe(false);
    expect(existsSync(path.join(input.installDir, "bot.pid"))).toBe(false);
    expect(callbacks.map((c) => c.body.event)).toContain("error");
  });

  it("a failing step writes the error marker (seed's ERR trap) and calls back", async () => {
    callbacks = [];
    const { input, script, home } = setup({ openclawBin: "/bin/false" });
    const res = await run(script, home);
    expect(res.status).not.toBe(0);
    const error = readFileSync(path.join(input.markerDir, ".openclaw-setup-error"), "utf8");
    expect(error).toMatch(/^FAILED: line \d+: /);
    expect(existsSync(path.join(input.markerDir, ".openclaw-setup-complete"))).toBe(false);
    expect(callbacks.map((c) => c.body.event)).toContain("error");
  });
});
