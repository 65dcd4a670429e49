/**
 * Deployments end to end: wrangler dev + the SSH relay + OpenSSH sshd on
 * 127.0.0.1 as the VPS (the provider stand-in installs the deployment's key).
 * The real setup script runs over SSH (OpenClaw replaced by a stand-in
 * executable), the markers appear, the installed bot client connects back and
 * the deployment reaches READY with its bot online. Then the coordinator is
 * killed (-9) during INSTALLING and during ordering, restarted, and each
 * deployment still reaches READY with exactly one VPS and one key.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningRelay, startRelay } from "../../relay/src/server";
import { type Harness, onFreePort, startHarness, until } from "../../scripts/lib/harness";
import { localDeployVars, prepareLocalVps, stopLocalVpsBots } from "../../scripts/lib/local-vps";
import { type OpenSshVps, startOpenSshVps } from "../../scripts/lib/openssh-vps";
import { type RunningStandins, startStandins } from "../../standins/server";

const RELAY_SECRET = "e2e-relay-secret-0123456789abcdef";

describe("deployments end to end (OpenSSH sshd as the VPS)", () => {
  let dir: string;
  let standins: RunningStandins;
  let relay: RunningRelay;
  let sshd: OpenSshVps;
  let h: Harness;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "cbc-e2e-deploy-"));
    const vps = prepareLocalVps(dir);
    standins = await startStandins({
      vpsIp: "127.0.0.1",
      authorizedKeysFile: vps.authorizedKeysFile,
      stateFile: path.join(dir, "standins.json"),
    });
    relay = await startRelay({ secret: RELAY_SECRET, allowPrivateTargets: true, log: () => {} });
    sshd = await onFreePort((port) => startOpenSshVps(path.join(dir, "sshd"), port, vps.authorizedKeysFile));
    h = await startHarness((port) => ({
      RELAY_SECRET,
      DEPLOY_SECRET_KEY: "e2e-deploy-secret-key-0123456789",
      LOG_LEVEL: "info",
      ...localDeployVars({
        paths: vps,
        coordinatorUrl: `http://127.0.0.1:${port}`,
        standinsUrl: standins.url,
        relayUrl: relay.url,
        sshPort: sshd.port,
        pollIntervalS: 1,
      }),
    }));
  });

  afterAll(async () => {
    stopLocalVpsBots(dir); // the installed bots run detached on this machine (the "VPS")
    await h?.stop();
    await sshd?.stop();
    await relay?.close();
    await standins?.close();
  });

  /** Polls a deployment, running the cron sweeper like npm start does (crons do not fire under wrangler dev). */
  async function waitFor(id: string, check: (d: any) => boolean, what: string, timeoutMs = 60_000, runCron = true) {
    let last: any = null;
    return until(
      what,
      timeoutMs,
      async () => {
        // (The sweeper waits for a runner's step in flight, so a check of what is in flight must not run it.)
        if (runCron) await fetch(`${h.coordinator.url}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`).catch(() => undefined);
        last = (await h.api("GET", `/api/v1/deployments/${id}`)).body;
        return check(last) ? last : null;
      },
      500,
    ).catch((err) => {
      throw new Error(`${err.message}; last: ${JSON.stringify(last)}; coordinator log: ${h.logFile}`);
    });
  }

  const setStandinLatency = async (latency: Record<string, number>) => {
    const res = await fetch(`${standins.url}/_standin/latency`, { method: "POST", body: JSON.stringify(latency) });
    expect(res.status).toBe(200);
  };

  const resources = async (id: string) => {
    const s = (await (await fetch(`${standins.url}/_standin/state`)).json()) as any;
    return {
      servers: s.hetzner.servers.filter((x: any) => x.name === `clawbot-${id}`).length,
      sshKeys: s.hetzner.sshKeys.filter((x: any) => x.name === `clawbot-${id}`).length,
      openrouterKeys: s.openrouter.keys.filter((x: any) => x.name === `clawbot-deployment-${id}`).length,
    };
  };

  it("reaches READY with the installed bot online, and DELETE tears it down", async () => {
    const created = await h.api("POST", "/api/v1/deployments", { name: "e2e-openclaw" });
    expect(created.status).toBe(202);
    const id = created.body.id;
    const ready = await waitFor(id, (d) => d.status === "READY" || d.status === "ERROR", "READY");
    expect(ready).toMatchObject({ status: "READY", bot_online: true, error: null, vps: { ip: "127.0.0.1", ssh_port: sshd.port } });

    const markers = path.join(dir, "vps", id, "markers");
    expect(readFileSync(path.join(markers, ".openclaw-setup-complete"), "utf8").trim()).toBe("COMPLETE");
    expect(readFileSync(path.join(markers, ".openclaw-setup-token"), "utf8").trim()).toBe(ready.bot_id);
    expect(readFileSync(path.join(dir, "vps", id, "home/.openclaw/openclaw.json"), "utf8")).toContain("stand_in");
    const bot = (await h.api("GET", `/api/v1/bots/${ready.bot_id}`)).body;
    expect(bot).toMatchObject({ status: "online", capabilities: ["openclaw"], metadata: { deployment_id: id } });
    expect(await resources(id)).toEqual({ servers: 1, sshKeys: 1, openrouterKeys: 1 });

    // The installed bot runs tasks like any other.
    const task = await h.api("POST", "/api/v1/tasks", { payload: { hello: "vps" }, capability: "openclaw" });
    const done = await until("task done on the deployed bot", 20_000, async () => {
      const t = (await h.api("GET", `/api/v1/tasks/${task.body.id}`)).body;
      return t.status === "completed" ? t : null;
    });
    expect(done).toMatchObject({ bot_id: ready.bot_id, result: { echo: { hello: "vps" } } });

    expect((await h.api("DELETE", `/api/v1/deployments/${id}`)).status).toBe(200);
    expect(await resources(id)).toEqual({ servers: 0, sshKeys: 0, openrouterKeys: 0 });
    expect((await h.api("GET", `/api/v1/bots/${ready.bot_id}`)).status).toBe(404);
  }, 120_000); // READY (60 s) + a task (20 s) + teardown

  it("survives kill -9 of the coordinator during INSTALLING and during ordering: READY, one VPS, one key", async () => {
    const installing = (await h.api("POST", "/api/v1/deployments", { name: "e2e-kill-installing" })).body.id;
    const inFlight = await waitFor(installing, (d) => d.status === "INSTALLING", "INSTALLING");
    expect(inFlight.stage).not.toBe("setup_complete"); // still installing at the moment of the kill
    await h.coordinator.kill();
    await h.restart();
    const first = await waitFor(installing, (d) => d.status === "READY" || d.status === "ERROR", "READY after a restart in INSTALLING");
    expect(first, JSON.stringify(first)).toMatchObject({ status: "READY", bot_online: true });
    expect(await resources(installing)).toEqual({ servers: 1, sshKeys: 1, openrouterKeys: 1 });

    // The provider answers the order late, so the kill lands while the order request is in flight.
    await setStandinLatency({ "POST /hetzner/v1/servers": 3000 });
    const ordering = (await h.api("POST", "/api/v1/deployments", { name: "e2e-kill-ordering" })).body.id;
    const atKill = await waitFor(ordering, (d) => d.status === "ORDERING" && d.stage === "plan_found", "ordering in flight", 20_000, false);
    expect(atKill.vps.order_id).toBeNull();
    await h.coordinator.kill();
    await setStandinLatency({});
    await h.restart();
    const second = await waitFor(ordering, (d) => d.status === "READY" || d.status === "ERROR", "READY after a restart while ordering");
    expect(second, JSON.stringify(second)).toMatchObject({ status: "READY", bot_online: true });
    expect(await resources(ordering)).toEqual({ servers: 1, sshKeys: 1, openrouterKeys: 1 });
    const logs = (await h.api("GET", `/api/v1/deployments/${ordering}/logs?limit=500`)).body;
    const orderedTwice = logs.filter((l: any) => l.type === "stage_completed" && l.stage === "vps_ordered").length;
    expect(orderedTwice).toBe(1);
  }, 300_000); // two READY waits (60 s each), an ordering wait (20 s), two restarts of wrangler dev

  it("a changed host key after ssh_ready fails the deployment instead of talking to the new server", async () => {
    writeFileSync(path.join(dir, "slow-onboard"), ""); // keep the script busy while the host key changes
    try {
      const id = (await h.api("POST", "/api/v1/deployments", { name: "e2e-host-key" })).body.id;
      const launched = await waitFor(id, (d) => d.stage === "setup_script_launched" || d.status === "ERROR", "setup launched");
      expect(launched.vps.host_key_sha256).toBeTruthy();
      await sshd.stop();
      sshd = await startOpenSshVps(path.join(dir, "sshd"), sshd.port, path.join(dir, "authorized_keys"), true);
      const failed = await waitFor(id, (d) => d.status !== "INSTALLING", "ERROR after the host key changed");
      expect(failed.status).toBe("ERROR");
      expect(failed.error).toMatch(/host key/);
      const logs = (await h.api("GET", `/api/v1/deployments/${id}/logs?limit=500`)).body;
      expect(logs.at(-1)).toMatchObject({ type: "deployment_failed", level: "error" });
    } finally {
      rmSync(path.join(dir, "slow-onboard"), { force: true });
    }
  }, 150_000);
});
