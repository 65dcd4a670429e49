import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { BotSocket, del, expectError, get, post, registerBot, StreamSocket } from "../helpers/api";

/**
 * Projects are initialized by bots with the `openclaw` capability. Each test here uses its own bot with it
 * and takes the assignments it gets; tests in this file run one after another, so no other bot competes.
 */
async function openclawBot() {
  const bot = await registerBot(["openclaw"], "openclaw-bot");
  const sock = await BotSocket.open(bot.id, bot.token);
  await sock.next("connected");
  return { bot, sock };
}

async function createProject(body: Record<string, unknown>) {
  const res = await post("/api/v1/projects", body);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res;
}

describe("projects (seed 000)", () => {
  it("a website project: 202 creating, initialized by an openclaw task, then ready — status endpoint and stream agree", async () => {
    const { sock } = await openclawBot();
    const res = await createProject({ name: "Shop", domain: "Shop.Example.com", description: "sells things", typeId: 1 });
    const p = res.body;
    expect(p).toMatchObject({ name: "Shop", type: "website", typeId: 1, status: "creating", project_path: "shop.example.com" });
    expect(p.status_url).toBe(`/api/v1/projects/${p.id}/status`);
    expect(p.websocket_url).toBe(`/api/v1/ws/projects/${p.id}`);
    expect(res.headers.get("Location")).toBe(`/api/v1/projects/${p.id}`);
    expect((await get(p.status_url)).body).toEqual({ status: "creating" });
    const watcher = await StreamSocket.open(p.websocket_url);
    expect(await watcher.waitFor("the snapshot", (m) => m.type === "status")).toMatchObject({ status: "creating" });

    const a = await sock.next("task_assigned");
    expect(a.payload.capability).toBe("openclaw");
    expect(a.payload.task_payload).toMatchObject({
      handler: "openclaw",
      project_id: p.id,
      project_dir: "shop.example.com",
      timeout_seconds: 600,
    });
    expect(a.payload.task_payload.prompt).toContain("Project name: Shop");
    expect(a.payload.task_payload.prompt).toContain("Description: sells things");
    expect(a.payload.task_payload.prompt).not.toContain("/root/");
    const job = (await get(`/api/v1/jobs/${p.init_job_id}`)).body;
    expect(job).toMatchObject({ project_id: p.id, kind: "task", status: "queued" });

    sock.send({ type: "task_started", payload: { task_id: a.payload.task_id } });
    await sock.next("task_ack");
    await sock.complete(a.payload.task_id, { exit_code: 0 });
    expect((await get(p.status_url)).body).toEqual({ status: "ready" });
    const done = await watcher.waitFor("complete", (m) => m.type === "complete");
    expect(done).toMatchObject({ status: "ready", data: { project_id: p.id, init_job_id: p.init_job_id } });
    expect((await get(`/api/v1/projects/${p.id}`)).body).toMatchObject({ status: "ready", error: null });
    watcher.close();
    sock.close();
  });

  it("other types are ready at once and run nothing", async () => {
    const before = await env.DB.prepare("SELECT count(*) AS n FROM tasks").first<{ n: number }>();
    const p = (await createProject({ name: "Bot", domain: "tg-bot", typeId: 2 })).body;
    expect(p).toMatchObject({ status: "ready", type: "telegrambot", init_job_id: null });
    expect((await get(p.status_url)).body).toEqual({ status: "ready" });
    const after = await env.DB.prepare("SELECT count(*) AS n FROM tasks").first<{ n: number }>();
    expect(after!.n).toBe(before!.n);
    const types = (await get("/api/v1/project-types")).body;
    expect(types.map((t: any) => t.name)).toEqual(["website", "telegrambot", "discordbot", "tradingbot", "scheduler", "custom"]);
    expect(types.filter((t: any) => t.initialized).map((t: any) => t.id)).toEqual([1]);
  });

  it("a failed run makes the project failed with the reason; POST /initialize runs it again (202), once it failed only", async () => {
    const { sock } = await openclawBot();
    const p = (await createProject({ name: "Broken", domain: "broken.example", typeId: 1 })).body;
    const first = await sock.next("task_assigned");
    sock.send({
      type: "task_complete",
      payload: { task_id: first.payload.task_id, success: false, error: "openclaw exited with 3: no template" },
    });
    await sock.next("task_ack");
    expect((await get(p.status_url)).body).toEqual({ status: "failed" });
    expect((await get(`/api/v1/projects/${p.id}`)).body.error).toBe("openclaw exited with 3: no template");

    const again = await post(`/api/v1/projects/${p.id}/initialize`);
    expect(again.status, JSON.stringify(again.body)).toBe(202);
    expect(again.body.status).toBe("creating");
    expect(again.body.init_job_id).not.toBe(p.init_job_id);
    const second = await sock.next("task_assigned");
    await sock.complete(second.payload.task_id);
    expect((await get(p.status_url)).body).toEqual({ status: "ready" });
    expectError(await post(`/api/v1/projects/${p.id}/initialize`), 409, "invalid_transition");
    sock.close();
  });

  it("deleting a project whose initialization runs cancels it on the bot", async () => {
    const { sock } = await openclawBot();
    const p = (await createProject({ name: "Gone", domain: "gone.example", typeId: 1 })).body;
    const a = await sock.next("task_assigned");
    expect((await del(`/api/v1/projects/${p.id}`)).body).toEqual({ id: p.id, deleted: true });
    expect((await sock.next("task_cancelled")).payload.task_id).toBe(a.payload.task_id);
    expect((await get(`/api/v1/jobs/${p.init_job_id}`)).body.status).toBe("cancelled");
    expectError(await get(`/api/v1/projects/${p.id}`), 404, "project_not_found");
    sock.close();
  });

  it("idempotent create; bad input is a 400 that makes nothing; unknown ids are project_not_found", async () => {
    const key = `project-${crypto.randomUUID()}`;
    const body = { name: "Once", domain: "once.example", typeId: 3 };
    const first = await post("/api/v1/projects", body, { headers: { "Idempotency-Key": key } });
    const second = await post("/api/v1/projects", body, { headers: { "Idempotency-Key": key } });
    expect([first.status, second.status]).toEqual([202, 200]);
    expect(second.body.id).toBe(first.body.id);
    expectError(
      await post("/api/v1/projects", { ...body, name: "Other" }, { headers: { "Idempotency-Key": key } }),
      409,
      "idempotency_conflict",
    );

    const before = await env.DB.prepare("SELECT count(*) AS n FROM projects").first<{ n: number }>();
    expectError(await post("/api/v1/projects", { domain: "x", typeId: 1 }), 400, "validation_failed");
    expectError(await post("/api/v1/projects", { name: "x", domain: "x", typeId: 7 }), 400, "validation_failed");
    expectError(await post("/api/v1/projects", { name: "x", domain: "has spaces", typeId: 1 }), 400, "validation_failed");
    expectError(await post("/api/v1/projects", { name: "x", domain: "../etc", typeId: 1 }), 400, "validation_failed");
    expectError(await post("/api/v1/projects", { name: "x", domain: "x", typeId: "1" }), 400, "validation_failed");
    const after = await env.DB.prepare("SELECT count(*) AS n FROM projects").first<{ n: number }>();
    expect(after!.n).toBe(before!.n);

    for (const path of ["", "/status", "/events"]) expectError(await get(`/api/v1/projects/nope${path}`), 404, "project_not_found");
    expectError(await post("/api/v1/projects/nope/initialize"), 404, "project_not_found");
    expectError(await del("/api/v1/projects/nope"), 404, "project_not_found");
    expect((await StreamSocket.upgrade("/api/v1/ws/projects/nope")).status).toBe(404);
    const listed = (await get("/api/v1/projects?type_id=3")).body;
    expect(listed.map((x: any) => x.id)).toContain(first.body.id);
    expect(listed.every((x: any) => x.typeId === 3)).toBe(true);
    expectError(await get("/api/v1/projects?status=done"), 400, "validation_failed");
  });
});
