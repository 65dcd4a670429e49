import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { cleanup } from "../../src/services/cleanup";
import { createCtx } from "../../src/services/context";
import { ADMIN_TOKEN, expectError, get, post, uniqueCapability } from "../helpers/api";

const DAY_MS = 24 * 60 * 60 * 1000;
const sql = (query: string, ...params: unknown[]) =>
  env.DB.prepare(query)
    .bind(...params)
    .run();
const count = async (query: string, ...params: unknown[]) =>
  (await env.DB.prepare(query)
    .bind(...params)
    .first<{ n: number }>())!.n;

/** A finished job (cancelled before any bot took it), made to look `daysAgo` old. */
async function finishedJob(daysAgo: number) {
  const job = (await post("/api/v1/jobs", { task: { capability: uniqueCapability("old") } })).body;
  await post(`/api/v1/jobs/${job.id}/cancel`);
  const at = Date.now() - daysAgo * DAY_MS;
  await sql("UPDATE jobs SET created_at = ?, finished_at = ? WHERE id = ?", at, at, job.id);
  return job.id as string;
}

describe("retention cleanup", () => {
  it("removes finished jobs older than RETENTION_DAYS with their tasks, events and stream; keeps the young, the running and a project's latest run", async () => {
    const old = await finishedJob(31);
    const young = await finishedJob(29);
    const running = (await post("/api/v1/jobs", { task: { capability: uniqueCapability("running") } })).body.id as string;
    await sql("UPDATE jobs SET created_at = ? WHERE id = ?", Date.now() - 40 * DAY_MS, running);
    const oldTasks = await count("SELECT count(*) AS n FROM tasks WHERE job_id = ?", old);
    expect(oldTasks).toBe(1);
    expect((await get(`/api/v1/jobs/${old}/events`)).body.length).toBeGreaterThan(0);

    // A project's runs: the earlier one goes, the latest stays with its project.
    const project = (await post("/api/v1/projects", { name: "P", domain: "p.example", typeId: 1 })).body;
    const firstRun = project.init_job_id as string;
    await post(`/api/v1/jobs/${firstRun}/cancel`);
    const rerun = (await post(`/api/v1/projects/${project.id}/initialize`)).body.init_job_id as string;
    await post(`/api/v1/jobs/${rerun}/cancel`);
    const longAgo = Date.now() - 60 * DAY_MS;
    await sql("UPDATE jobs SET finished_at = ? WHERE id IN (?, ?)", longAgo, firstRun, rerun);

    // A standalone task long finished, one long pending; an old event and deployment log line.
    const doneTask = (await post("/api/v1/tasks", { capability: uniqueCapability("t") })).body.id as string;
    await post(`/api/v1/tasks/${doneTask}/cancel`, {});
    const pendingTask = (await post("/api/v1/tasks", { capability: uniqueCapability("t") })).body.id as string;
    await sql(
      "UPDATE tasks SET cancelled_at = ?, updated_at = ?, created_at = ? WHERE id IN (?, ?)",
      longAgo,
      longAgo,
      longAgo,
      doneTask,
      pendingTask,
    );
    await sql(
      "INSERT INTO deployment_events (deployment_id, level, type, message, created_at) VALUES ('d-old', 'info', 'stage', 'old', ?)",
      longAgo,
    );
    await sql("UPDATE events SET created_at = ? WHERE entity_id = ?", longAgo, pendingTask);

    const report = await cleanup(createCtx(env));
    expect(report.failures).toBe(0);
    expect(report.jobs).toBeGreaterThanOrEqual(2);
    expect(report.streams).toBe(report.jobs);

    expectError(await get(`/api/v1/jobs/${old}`), 404, "job_not_found");
    expect(await count("SELECT count(*) AS n FROM tasks WHERE job_id = ?", old)).toBe(0);
    expect(await count("SELECT count(*) AS n FROM events WHERE entity_id = ?", old)).toBe(0);
    const stream = (await env.EVENT_STREAM.getByName(`job:${old}`).read(0, 10)) as { events: unknown[]; lastSeq: number };
    expect(stream.events).toEqual([]);
    expectError(await get(`/api/v1/jobs/${firstRun}`), 404, "job_not_found");
    expect((await get(`/api/v1/jobs/${rerun}`)).status).toBe(200);
    expect((await get(`/api/v1/jobs/${young}`)).status).toBe(200);
    expect((await get(`/api/v1/jobs/${running}`)).body.status).toBe("queued");
    expectError(await get(`/api/v1/tasks/${doneTask}`), 404, "task_not_found");
    expect((await get(`/api/v1/tasks/${pendingTask}`)).body.status).toBe("pending");
    expect(await count("SELECT count(*) AS n FROM events WHERE entity_id = ?", pendingTask)).toBe(0);
    expect(await count("SELECT count(*) AS n FROM deployment_events WHERE deployment_id = 'd-old'")).toBe(0);

    // A second run finds nothing more of it.
    const again = await cleanup(createCtx(env));
    expect(again.jobs).toBe(0);
  });

  it("removes the artifacts of removed jobs (bytes and rows) and uploads that never came; keeps the rest", async () => {
    const put = async (query: string) =>
      (
        await SELF.fetch(`http://coordinator.test/api/v1/artifacts?${query}`, {
          method: "POST",
          headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "text/plain" },
          body: query,
        })
      ).json() as Promise<any>;
    const oldJob = await finishedJob(31);
    const youngJob = await finishedJob(1);
    const ofOld = await put(`name=old.txt&job_id=${oldJob}`);
    const ofYoung = await put(`name=young.txt&job_id=${youngJob}`);
    const standalone = await put("name=mine.txt");
    // An upload started and never sent, its URL long expired.
    await sql(
      `INSERT INTO artifacts (id, name, content_type, kind, status, r2_key, uploaded_by, created_at, updated_at, upload_expires_at)
       VALUES ('never-sent', 'n', 'text/plain', 'file', 'pending', 'artifacts/never-sent', 'bot-x', ?, ?, ?)`,
      Date.now() - DAY_MS,
      Date.now() - DAY_MS,
      Date.now() - DAY_MS + 900_000,
    );

    const report = await cleanup(createCtx(env));
    expect(report.failures).toBe(0);
    expect(report.artifacts).toBe(2);
    expectError(await get(`/api/v1/artifacts/${ofOld.id}`), 404, "artifact_not_found");
    expect(await env.ARTIFACTS.head(`artifacts/${ofOld.id}`)).toBeNull();
    expectError(await get("/api/v1/artifacts/never-sent"), 404, "artifact_not_found");
    for (const kept of [ofYoung, standalone]) {
      expect((await get(`/api/v1/artifacts/${kept.id}`)).status).toBe(200);
      expect(await env.ARTIFACTS.head(`artifacts/${kept.id}`)).not.toBeNull();
    }
  });

  it("the fleet stream keeps its newest event when everything in it is old, so its seq never restarts", async () => {
    const fleet = env.EVENT_STREAM.getByName("fleet");
    const last = await fleet.publish([{ type: "queue", data: { n: 1 } }]);
    expect(await fleet.prune(Date.now() + 1000, 10_000)).toBeGreaterThanOrEqual(0);
    const after = (await fleet.read(0, 10)) as { events: { seq: number }[]; lastSeq: number };
    expect(after.events.map((e) => e.seq)).toEqual([last]);
    expect(await fleet.publish([{ type: "queue", data: { n: 2 } }])).toBe(last + 1);
  });
});
