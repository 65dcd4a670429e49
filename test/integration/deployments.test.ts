/**
 * Deployments through the real Worker and the deployment Durable Object, with
 * real local services (test/helpers/deploy-services.ts): the Hetzner-shaped
 * stand-in "delivers" a VPS that is an SSH server on 127.0.0.1, the relay runs
 * the setup script there with bash, and the installed bot connects back.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { DEPLOYMENT_STAGES } from "../../src/core/deployment-machine";
import { callbackToken } from "../../src/services/deployment-stages";
import { ADMIN_TOKEN, BotSocket, del, eventually, expectError, get, post, StreamSocket } from "../helpers/api";

const standinsUrl = () => (env as unknown as { STANDINS_URL: string }).STANDINS_URL;
const standinState = async () => (await fetch(`${standinsUrl()}/_standin/state`)).json() as Promise<any>;

const publicUrl = () => (env as unknown as { PUBLIC_URL: string }).PUBLIC_URL;

/** The bot credentials the setup script installed on the "VPS" (read through the test helper). */
async function installedBot(deploymentId: string): Promise<{ id: string; token: string }> {
  const text = await eventually(
    async () => {
      const res = await fetch(`${publicUrl()}/_test/vps/${deploymentId}/bot.env`);
      return res.ok ? res.text() : null;
    },
    10_000,
    "bot.env on the VPS",
  );
  const get = (k: string) => new RegExp(`^${k}='?([^']*)'?$`, "m").exec(text)![1]!;
  return { id: get("CLAWBOT_BOT_ID"), token: get("CLAWBOT_TOKEN") };
}

async function waitFor(id: string, check: (d: any) => boolean, what: string, timeoutMs = 15_000) {
  return eventually(
    async () => {
      const d = (await get(`/api/v1/deployments/${id}`)).body;
      return check(d) ? d : null;
    },
    timeoutMs,
    what,
  );
}

async function createDeployment(body: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  return post("/api/v1/deployments", { name: "openclaw-test", region: "fsn1", plan: "cx22", ...body }, { headers });
}

describe("deployments", () => {
  it("validates input and needs an admin token", async () => {
    expectError(await post("/api/v1/deployments", { name: "" }), 400, "validation_failed");
    expectError(await post("/api/v1/deployments", { name: "bad;name" }), 400, "validation_failed");
    expectError(await post("/api/v1/deployments", { name: "x", provider: "aws" }), 400, "validation_failed");
    expectError(await post("/api/v1/deployments", { name: "x", provider: "ovh" }), 400, "validation_failed");
    const viewer = (await post("/api/v1/tokens", { kind: "viewer", name: "v" })).body.token;
    expectError(await post("/api/v1/deployments", { name: "x" }, { token: viewer }), 403, "forbidden");
    expectError(await get("/api/v1/deployments/nope"), 404, "deployment_not_found");
    expectError(await get("/api/v1/deployments?status=DONE"), 400, "validation_failed");
  });

  it("provisions through all ten stages to READY with its bot online, then DELETE tears everything down", async () => {
    const res = await createDeployment({ name: "full-run" });
    expect(res.status).toBe(202);
    expect(res.headers.get("Location")).toBe(`/api/v1/deployments/${res.body.id}`);
    expect(res.body).toMatchObject({
      name: "full-run",
      provider: "local",
      status: "ORDERING",
      status_url: `/api/v1/deployments/${res.body.id}`,
      websocket_url: `/api/v1/ws/deployments/${res.body.id}`,
    });
    const id = res.body.id as string;

    // The script completes on the "VPS"; READY waits for the installed bot to connect.
    const launched = await eventually(
      async () => {
        const d = (await get(`/api/v1/deployments/${id}`)).body;
        return d.stage === "setup_script_launched" ? d : null;
      },
      15_000,
      "setup script launched",
    );
    expect(launched).toMatchObject({ status: "INSTALLING", vps: { ip: "127.0.0.1" } });
    expect(launched.vps.host_key_sha256).toMatch(/^[A-Za-z0-9+/]{43}$/);
    expect(launched.bot_id).toBeTruthy();
    expect(launched.bot_online).toBe(false);

    const logs = (await get(`/api/v1/deployments/${id}/logs?limit=500`)).body;
    const completed = logs.filter((l: any) => l.type === "stage_completed").map((l: any) => l.stage);
    expect(completed).toEqual([
      "ssh_key_generated",
      "openrouter_key_created",
      "plan_found",
      "vps_ordered",
      "vps_delivered",
      "vps_ip_acquired",
      "vps_rebuilt",
      "ssh_ready",
      "setup_script_launched",
    ]);
    expect(JSON.stringify(logs)).not.toMatch(/BEGIN OPENSSH PRIVATE KEY|sk-or-v1-/);

    // Exactly one server, one SSH key and one OpenRouter key were created.
    const state = await standinState();
    expect(state.hetzner.servers.filter((s: any) => s.name === `clawbot-${id}`)).toHaveLength(1);
    expect(state.hetzner.sshKeys.filter((k: any) => k.name === `clawbot-${id}`)).toHaveLength(1);
    expect(state.openrouter.keys.filter((k: any) => k.name === `clawbot-deployment-${id}`)).toHaveLength(1);
    // Capped by default (OPENROUTER_KEY_LIMIT_USD, 10 USD unless configured).
    expect(state.openrouter.keys.find((k: any) => k.name === `clawbot-deployment-${id}`).limit).toBe(10);

    // The deployment's private key and OpenRouter secret are sealed at rest.
    const row = await env.DB.prepare("SELECT ssh_private_key_sealed AS k, openrouter_key_sealed AS o FROM deployments WHERE id = ?")
      .bind(id)
      .first<{ k: string; o: string }>();
    expect(row!.k).toMatch(/^v1:/);
    expect(row!.o).toMatch(/^v1:/);

    // The installed bot connects back with the token made for this deployment: READY, bot online.
    const bot = await installedBot(id);
    expect(bot.id).toBe(launched.bot_id);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const ready = await waitFor(id, (d) => d.status === "READY", "READY");
    // Each of the ten stages was timed (GET /metrics; counts are flushed at most once a second, so the last may trail).
    const stageCount = (stage: string) => new RegExp(`^clawbot_deployment_stage_seconds_count\\{stage="${stage}"\\} [1-9]`, "m");
    const scrape = async () =>
      (await SELF.fetch("http://coordinator.test/metrics", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })).text();
    await expect
      .poll(
        async () => {
          const metrics = await scrape();
          return DEPLOYMENT_STAGES.filter((stage) => !stageCount(stage).test(metrics));
        },
        { timeout: 5000 },
      )
      .toEqual([]);
    expect(ready).toMatchObject({ stage: "setup_complete", next_stage: null, bot_online: true, error: null });
    expect(ready.finished_at).not.toBeNull();
    const readyLog = (await get(`/api/v1/deployments/${id}/logs?limit=500`)).body.at(-1);
    expect(readyLog).toMatchObject({ type: "deployment_ready", stage: "setup_complete" });

    // Its stream has every log line and each stage as it happened, ending READY; a watcher gets READY first.
    const events = (await get(`/api/v1/deployments/${id}/events?limit=500`)).body;
    const stages = events.filter((e: any) => e.type === "status" && e.data.stage).map((e: any) => e.data.stage);
    expect(stages.slice(-3)).toEqual(["ssh_ready", "setup_script_launched", "setup_complete"]);
    expect(events.filter((e: any) => e.type === "log").length).toBe(
      (await get(`/api/v1/deployments/${id}/logs?limit=500`)).body.length - 1, // the create's own line is written with the row
    );
    expect(events.at(-1)).toMatchObject({ type: "complete", status: "READY" });
    const watcher = await StreamSocket.open(`/api/v1/ws/deployments/${id}`);
    expect(await watcher.waitFor("the snapshot", (m) => m.type === "status")).toMatchObject({ status: "READY", data: { snapshot: true } });
    watcher.close();

    // DELETE tears everything down: the server, the OpenRouter key, the bot and its token.
    expect((await del(`/api/v1/deployments/${id}`)).body).toEqual({ id, deleted: true });
    const after = await standinState();
    expect(after.hetzner.servers.filter((s: any) => s.name === `clawbot-${id}`)).toHaveLength(0);
    expect(after.hetzner.sshKeys.filter((k: any) => k.name === `clawbot-${id}`)).toHaveLength(0);
    expect(after.openrouter.keys.filter((k: any) => k.name === `clawbot-deployment-${id}`)).toHaveLength(0);
    expectError(await get(`/api/v1/bots/${bot.id}`), 404, "bot_not_found");
    expect((await BotSocket.upgrade(bot.id, bot.token)).status).toBe(401);
    expectError(await get(`/api/v1/deployments/${id}`), 404, "deployment_not_found");
    sock.close();
  });

  it("a double click buys one VPS: the idempotency key returns the first deployment", async () => {
    const key = `deploy-${Date.now()}`;
    const [a, b] = await Promise.all([
      createDeployment({ name: "twice" }, { "Idempotency-Key": key }),
      createDeployment({ name: "twice" }, { "Idempotency-Key": key }),
    ]);
    expect([a.status, b.status].sort()).toEqual([200, 202]);
    expect(a.body.id).toBe(b.body.id);
    expectError(await createDeployment({ name: "something else" }, { "Idempotency-Key": key }), 409, "idempotency_conflict");
    const id = a.body.id;
    await waitFor(id, (d) => d.stage === "vps_ordered" || d.status === "INSTALLING" || d.status === "READY", "ordered");
    expect((await standinState()).hetzner.servers.filter((s: any) => s.name === `clawbot-${id}`)).toHaveLength(1);
    await post(`/api/v1/deployments/${id}/cancel`).catch(() => undefined);
  });

  it("cancel stops the machine; retry resumes it, reusing the VPS and key it already has", async () => {
    const id = (await createDeployment({ name: "cancel-retry" })).body.id;
    await waitFor(id, (d) => d.stage === "vps_ordered" || d.stage === "vps_delivered" || d.status === "INSTALLING", "ordered");
    const cancelled = await post(`/api/v1/deployments/${id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: "ERROR", error: "cancelled" });
    const stageAtCancel = cancelled.body.stage;
    // Nothing is left to run it: the runner has no alarm (cancel waited for any step in flight).
    expect(await runInDurableObject(env.DEPLOYMENT_RUNNER.getByName(id), (_obj, state) => state.storage.getAlarm())).toBeNull();
    expect((await get(`/api/v1/deployments/${id}`)).body).toMatchObject({ status: "ERROR", stage: stageAtCancel });
    expectError(await post(`/api/v1/deployments/${id}/cancel`), 409, "invalid_transition");

    const retried = await post(`/api/v1/deployments/${id}/retry`);
    expect(retried.status).toBe(200);
    await waitFor(id, (d) => d.stage === "setup_script_launched" || d.status === "READY", "launched after retry");
    const state = await standinState();
    expect(state.hetzner.servers.filter((s: any) => s.name === `clawbot-${id}`)).toHaveLength(1);
    expect(state.openrouter.keys.filter((k: any) => k.name === `clawbot-deployment-${id}`)).toHaveLength(1);
    const logTypes = (await get(`/api/v1/deployments/${id}/logs?limit=500`)).body.map((l: any) => l.type);
    expect(logTypes).toContain("deployment_cancelled");
    expect(logTypes).toContain("deployment_retry");
    expectError(await post(`/api/v1/deployments/${id}/retry`), 409, "invalid_transition");
    await post(`/api/v1/deployments/${id}/cancel`);
  });

  it("a relaunch of the setup script revokes the previous launch's bot token and closes its socket", async () => {
    const id = (await createDeployment({ name: "relaunch" })).body.id;
    await waitFor(id, (d) => d.stage === "setup_script_launched", "launched");
    expect((await post(`/api/v1/deployments/${id}/cancel`)).status).toBe(200);
    const first = await installedBot(id);
    const sock = await BotSocket.open(first.id, first.token);
    await sock.next("connected");
    expect((await post(`/api/v1/deployments/${id}/retry`)).status).toBe(200);
    await eventually(
      async () => (await env.DB.prepare("SELECT launch_count AS n FROM deployments WHERE id = ?").bind(id).first<{ n: number }>())!.n === 2,
      20_000,
      "second launch",
    );
    await eventually(async () => sock.closed, 2000, "the first launch's socket closed");
    expect(sock.closed!.code).toBe(4001);
    expect((await BotSocket.upgrade(first.id, first.token)).status).toBe(401);
    await post(`/api/v1/deployments/${id}/cancel`);
  });

  it("the setup callback needs its deployment's token", async () => {
    const id = (await createDeployment({ name: "callback" })).body.id;
    const call = (token: string | null, body: unknown) =>
      SELF.fetch(`http://coordinator.test/api/v1/deployments/${id}/callback`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body: JSON.stringify(body),
      });
    expect((await call(null, { event: "progress" })).status).toBe(401);
    expect((await call("0".repeat(64), { event: "progress" })).status).toBe(401);
    expect((await call("test-admin-token-0123456789abcdef", { event: "complete" })).status).toBe(401);
    expect((await call("x", { event: "launch" })).status).toBe(400);
    await post(`/api/v1/deployments/${id}/cancel`).catch(() => undefined);
  });

  it("callbacks racing the launch never relaunch the setup script (the runner serializes its work)", async () => {
    const id = (await createDeployment({ name: "callback-race" })).body.id;
    const secret = (env as unknown as { DEPLOY_SECRET_KEY: string }).DEPLOY_SECRET_KEY;
    const token = await callbackToken(secret, id, 1); // valid from the moment launch 1 is recorded
    let stop = false;
    const hammer = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) {
        const event = i % 25 === 24 ? "complete" : "progress";
        await SELF.fetch(`http://coordinator.test/api/v1/deployments/${id}/callback`, {
          method: "POST",
          headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
          body: JSON.stringify({ event, message: `step ${i}` }),
        });
      }
    })();
    await waitFor(id, (d) => d.stage === "setup_script_launched" || d.status === "READY", "launched");
    await new Promise((r) => setTimeout(r, 2500)); // several poll intervals with callbacks still arriving
    stop = true;
    await hammer;
    const logs = (await get(`/api/v1/deployments/${id}/logs?limit=500`)).body;
    expect(logs.filter((l: any) => l.type === "stage_completed" && l.stage === "setup_script_launched")).toHaveLength(1);
    const row = await env.DB.prepare("SELECT launch_count AS n FROM deployments WHERE id = ?").bind(id).first<{ n: number }>();
    expect(row!.n).toBe(1);
    expect(logs.some((l: any) => l.type === "script_progress")).toBe(true);
    await post(`/api/v1/deployments/${id}/cancel`).catch(() => undefined);
  });

  it("the sweeper marks a deployment stuck INSTALLING without progress for 45 minutes as ERROR", async () => {
    const id = (await createDeployment({ name: "stale" })).body.id;
    // No bot connects in this test, so it waits in INSTALLING (setup_complete) for one.
    await waitFor(id, (d) => d.stage === "setup_script_launched", "installing");
    // Age its progress as if 46 minutes had passed with the script silent (bumping updated_at, as any writer does).
    await env.DB.prepare("UPDATE deployments SET last_progress_at = ?, updated_at = updated_at + 1 WHERE id = ?")
      .bind(Date.now() - 46 * 60_000, id)
      .run();
    const { createScheduledController, createExecutionContext, waitOnExecutionContext } = await import("cloudflare:test");
    const worker = (await import("../../src/index")).default;
    const ctx = createExecutionContext();
    await worker.scheduled(createScheduledController({ cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    const d = (await get(`/api/v1/deployments/${id}`)).body;
    expect(d).toMatchObject({ status: "ERROR", error: "no progress for 45 minutes while installing" });
  });

  it("lists and filters deployments", async () => {
    const list = await get("/api/v1/deployments?status=ERROR&limit=200");
    expect(list.status).toBe(200);
    expect(list.body.every((d: any) => d.status === "ERROR")).toBe(true);
    expect(list.body.length).toBeGreaterThan(0);
  });
});
