/**
 * Scheduled tasks. Most cases drive the schedule's object on a controllable
 * clock (`runDue(nowMs)`, the same code its alarm runs with the real clock);
 * one lets the real alarm fire and a connected bot run what it starts.
 */
import { env, runInDurableObject, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ScheduleRunner } from "../../src/objects/schedule-runner";
import { createCtx } from "../../src/services/context";
import { sweep } from "../../src/services/sweeper";
import { ADMIN_TOKEN, BotSocket, del, eventually, expectError, get, post, registerBot, uniqueCapability } from "../helpers/api";

const runner = (id: string) => env.SCHEDULE_RUNNER.getByName(id);
/** What the alarm does at `nowMs`. */
const runDue = (id: string, nowMs: number) => runInDurableObject(runner(id), (obj: ScheduleRunner) => obj.runDue(nowMs));
const alarmOf = (id: string) => runInDurableObject(runner(id), (_obj, state) => state.storage.getAlarm());
const schedule = async (id: string) => (await get(`/api/v1/schedules/${id}`)).body;
const runsOf = async (id: string) => {
  const res = await get(`/api/v1/jobs?schedule_id=${id}&limit=200`);
  expect(res.status).toBe(200);
  // Oldest first (runs one fake-clock wake-up made share their creation time: then by due time).
  const key = (j: any) => [Date.parse(j.created_at), j.scheduled_for ? Date.parse(j.scheduled_for) : 0];
  return (res.body as any[]).sort((a, b) => key(a)[0]! - key(b)[0]! || key(a)[1]! - key(b)[1]!);
};
const countSchedules = async () => (await env.DB.prepare("SELECT count(*) n FROM schedules").first<{ n: number }>())!.n;

async function create(body: Record<string, unknown>) {
  const res = await post("/api/v1/schedules", { name: "test", task: { payload: { n: 1 }, capability: uniqueCapability("sch") }, ...body });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

const HOUR_MS = 3_600_000;

describe("schedules", () => {
  it("create, get, list: the next run in its timezone; an idempotent replay; a conflicting key", async () => {
    const body = { name: "weekday report", cron: "0 9 * * 1-5", timezone: "Europe/Berlin", task: { payload: { report: true } } };
    const created = await create({ ...body, idempotency_key: `sch-${uniqueCapability()}` });
    expect(created).toMatchObject({
      name: "weekday report",
      status: "active",
      cron: "0 9 * * 1-5",
      timezone: "Europe/Berlin",
      every_seconds: null,
      task: { payload: { report: true }, capability: null, priority: 0, timeout_seconds: 300, max_attempts: 3 },
      workflow_id: null,
      overlap: "skip",
      catch_up: "none",
      run_count: 0,
      skipped_count: 0,
      last_run_at: null,
      runs_url: `/api/v1/jobs?schedule_id=${created.id}`,
    });
    // 09:00 in Berlin, on a weekday, in the future.
    const next = new Date(created.next_run_at);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(new Intl.DateTimeFormat("en-GB", { timeZone: "Europe/Berlin", hour: "2-digit", minute: "2-digit" }).format(next)).toBe("09:00");
    expect([0, 6]).not.toContain(next.getUTCDay());
    expect(await alarmOf(created.id)).toBe(next.getTime());

    expect(await schedule(created.id)).toEqual(created);
    const listed = await get("/api/v1/schedules?status=active&limit=200");
    expect(listed.body.map((s: any) => s.id)).toContain(created.id);

    const key = `sch-${uniqueCapability()}`;
    const first = await post("/api/v1/schedules", body, { headers: { "Idempotency-Key": key } });
    const again = await post("/api/v1/schedules", body, { headers: { "Idempotency-Key": key } });
    expect([first.status, again.status]).toEqual([201, 200]);
    expect(again.body.id).toBe(first.body.id);
    const other = await post("/api/v1/schedules", { ...body, name: "other" }, { headers: { "Idempotency-Key": key } });
    expectError(other, 409, "idempotency_conflict");
  });

  it("bad input is a 400 naming the field (or 404 for an unknown workflow), and nothing is created", async () => {
    const before = await countSchedules();
    const task = { payload: {} };
    const cases: [Record<string, unknown>, string][] = [
      [{ name: "x", task }, "cron"], // neither cron nor every_seconds
      [{ name: "x", cron: "* * * * *", every_seconds: 60, task }, "cron"],
      [{ name: "x", cron: "61 * * * *", task }, "cron"],
      [{ name: "x", cron: "0 * * * * *", task }, "cron"], // six fields
      [{ name: "x", cron: "0 0 31 2 *", task }, "cron"], // never
      [{ name: "x", cron: "* * * * *", timezone: "Mars/Olympus", task }, "timezone"],
      [{ name: "x", every_seconds: 0, task }, "every_seconds"],
      [{ name: "x", every_seconds: 1.5, task }, "every_seconds"],
      [{ name: "x", every_seconds: 60 }, "task"], // nothing to run
      [{ name: "x", every_seconds: 60, task, workflow_id: "w" }, "task"],
      [{ name: "x", every_seconds: 60, task, overlap: "sometimes" }, "overlap"],
      [{ name: "x", every_seconds: 60, task, catch_up: "most" }, "catch_up"],
      [{ name: "", every_seconds: 60, task }, "name"],
      [{ name: "x", every_seconds: 60, task: { timeout_seconds: 0 } }, "task.timeout_seconds"],
    ];
    for (const [body, field] of cases) {
      const res = await post("/api/v1/schedules", body);
      expectError(res, 400, "validation_failed");
      expect(JSON.stringify(res.body.error.details), JSON.stringify(body)).toContain(field);
    }
    expectError(
      await post("/api/v1/schedules", { name: "x", every_seconds: 60, workflow_id: "no-such-workflow" }),
      404,
      "workflow_not_found",
    );
    for (const path of ["missing", "missing/pause", "missing/resume", "missing/trigger"]) {
      const res = path.includes("/") ? await post(`/api/v1/schedules/${path}`) : await get(`/api/v1/schedules/${path}`);
      expectError(res, 404, "schedule_not_found");
    }
    expectError(await del("/api/v1/schedules/missing"), 404, "schedule_not_found");
    expect(await countSchedules()).toBe(before);
  });

  it("each due time runs one job, once: catch_up all runs every missed one, and again after a crash makes no second job", async () => {
    // Monthly on the 1st at midnight UTC: the real clock (December 2026) is nowhere near the times used here.
    const s = await create({ cron: "0 0 1 * *", catch_up: "all", overlap: "queue" });
    const marchFirst = Date.parse("2027-03-01T00:00:30Z");
    expect(await runDue(s.id, marchFirst)).toEqual({ fired: 3, missed: 0 });
    const runs = await runsOf(s.id);
    expect(runs.map((j) => j.scheduled_for)).toEqual(["2027-01-01T00:00:00.000Z", "2027-02-01T00:00:00.000Z", "2027-03-01T00:00:00.000Z"]);
    expect(runs.every((j) => j.schedule_id === s.id && j.kind === "task")).toBe(true);
    expect(await schedule(s.id)).toMatchObject({ run_count: 3, last_job_id: runs[2].id });
    expect(await alarmOf(s.id)).toBe(Date.parse("2027-04-01T00:00:00Z"));

    // The same wake-up again, as after a crash before the object remembered it: no new job.
    expect(await runDue(s.id, marchFirst)).toEqual({ fired: 0, missed: 0 });
    await runInDurableObject(runner(s.id), (_obj, state) => state.storage.put("cursor", Date.parse("2026-12-15T00:00:00Z")));
    expect(await runDue(s.id, marchFirst)).toEqual({ fired: 3, missed: 0 });
    expect((await runsOf(s.id)).map((j) => j.id)).toEqual(runs.map((j) => j.id));
    expect((await schedule(s.id)).run_count).toBe(3);
    const metrics = await (
      await SELF.fetch("http://coordinator.test/metrics", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } })
    ).text();
    expect(metrics).toMatch(/^clawbot_schedule_runs_total\{outcome="run"\} [3-9]|^clawbot_schedule_runs_total\{outcome="run"\} \d{2,}/m);

    // overlap: queue — the first runs, the others wait; when it ends the next one starts.
    expect(runs.map((j) => j.queued_at !== null)).toEqual([true, false, false]);
    expect((await post(`/api/v1/jobs/${runs[0].id}/cancel`, { reason: "test" })).status).toBe(200);
    await eventually(async () => (await get(`/api/v1/jobs/${runs[1].id}`)).body.queued_at !== null, 5000, "the second run to start");
    expect((await get(`/api/v1/jobs/${runs[2].id}`)).body.queued_at).toBeNull();
  });

  it("catch_up none and last after an outage; every_seconds counts from creation", async () => {
    // (overlap: queue, so the runs nobody takes do not skip the next ones)
    const none = await create({ every_seconds: 3600, catch_up: "none", overlap: "queue" });
    const last = await create({ every_seconds: 3600, catch_up: "last", overlap: "queue" });
    for (const s of [none, last]) {
      const anchor = Date.parse(s.created_at);
      expect(s.next_run_at).toBe(new Date(anchor + HOUR_MS).toISOString());
      // Five hourly due times passed; the newest 30 s ago (on time).
      expect(await runDue(s.id, anchor + 5 * HOUR_MS + 30_000)).toEqual({ fired: 1, missed: 4 });
      expect((await runsOf(s.id)).map((j) => j.scheduled_for)).toEqual([new Date(anchor + 5 * HOUR_MS).toISOString()]);
    }
    // Three more passed, the newest two minutes ago: `none` runs nothing, `last` runs the newest.
    const late = (s: any) => Date.parse(s.created_at) + 8 * HOUR_MS + 120_000;
    expect(await runDue(none.id, late(none))).toEqual({ fired: 0, missed: 3 });
    const lastResult = await runDue(last.id, late(last));
    expect(lastResult).toEqual({ fired: 1, missed: 2 });
    expect(await schedule(none.id)).toMatchObject({ run_count: 1, skipped_count: 7, last_skip: expect.stringMatching(/^missed: 3/) });
    expect(await schedule(last.id)).toMatchObject({ run_count: 2, skipped_count: 6, last_skip: null });
  });

  it("overlap skip and cancel_previous; a manual trigger follows the same policy", async () => {
    const skip = await create({ every_seconds: 3600, overlap: "skip" });
    const t0 = Date.parse(skip.created_at);
    await runDue(skip.id, t0 + HOUR_MS); // no bot has the capability: the run stays queued
    const [firstRun] = await runsOf(skip.id);
    await runDue(skip.id, t0 + 2 * HOUR_MS);
    expect(await runsOf(skip.id)).toHaveLength(1);
    expect(await schedule(skip.id)).toMatchObject({
      run_count: 1,
      skipped_count: 1,
      last_skip: `overlap: run ${firstRun.id} has not finished`,
    });
    expectError(await post(`/api/v1/schedules/${skip.id}/trigger`), 409, "run_in_progress");

    const cancel = await create({ every_seconds: 3600, overlap: "cancel_previous" });
    const t1 = Date.parse(cancel.created_at);
    await runDue(cancel.id, t1 + HOUR_MS);
    const [scheduledRun] = await runsOf(cancel.id);
    const triggered = await post(`/api/v1/schedules/${cancel.id}/trigger`);
    expect(triggered.status).toBe(202);
    expect(triggered.headers.get("Location")).toBe(`/api/v1/jobs/${triggered.body.id}`);
    expect(triggered.body).toMatchObject({ schedule_id: cancel.id, scheduled_for: null, status: "queued" });
    const replaced = (await get(`/api/v1/jobs/${scheduledRun.id}`)).body;
    expect(replaced).toMatchObject({ status: "cancelled", error: expect.stringMatching(/replaced by a newer run/) });
    expect(await runsOf(cancel.id)).toHaveLength(2);
  });

  it("pause clears the alarm and nothing runs; resume arms it from now on; delete removes it and its waiting runs", async () => {
    const s = await create({ every_seconds: 3600, overlap: "queue" });
    const t0 = Date.parse(s.created_at);
    const paused = await post(`/api/v1/schedules/${s.id}/pause`);
    expect(paused.body).toMatchObject({ status: "paused", next_run_at: null });
    expect(await alarmOf(s.id)).toBeNull();
    expect(await runDue(s.id, t0 + 3 * HOUR_MS)).toEqual({ fired: 0, missed: 0 });
    expect(await runsOf(s.id)).toHaveLength(0);

    const resumed = await post(`/api/v1/schedules/${s.id}/resume`);
    expect(resumed.body.status).toBe("active");
    const next = Date.parse(resumed.body.next_run_at);
    expect(next).toBeGreaterThan(Date.now());
    expect((next - t0) % HOUR_MS).toBe(0);
    expect(await alarmOf(s.id)).toBe(next);
    // Resuming twice is harmless.
    expect((await post(`/api/v1/schedules/${s.id}/resume`)).body.next_run_at).toBe(resumed.body.next_run_at);

    // Two runs: one running, one waiting behind it. Deleting cancels the waiting one only.
    await runDue(s.id, next);
    await runDue(s.id, next + HOUR_MS);
    const [running, waiting] = await runsOf(s.id);
    expect((await del(`/api/v1/schedules/${s.id}`)).body).toEqual({ id: s.id, deleted: true });
    expectError(await get(`/api/v1/schedules/${s.id}`), 404, "schedule_not_found");
    expect(await alarmOf(s.id)).toBeNull();
    expect((await get(`/api/v1/jobs/${waiting.id}`)).body.status).toBe("cancelled");
    expect((await get(`/api/v1/jobs/${running.id}`)).body.status).toBe("queued");
    expectError(await post(`/api/v1/schedules/${s.id}/trigger`), 404, "schedule_not_found");
  });

  it("a workflow schedule runs the workflow's steps; once the workflow is deleted its runs are skipped with the reason", async () => {
    const cap = uniqueCapability("schwf");
    const wf = await post("/api/v1/workflows", {
      name: "wf",
      capability: cap,
      steps: [{ payload: { step: 1 } }, { payload: { step: 2 } }],
    });
    expect(wf.status).toBe(201);
    const s = await create({ every_seconds: 3600, workflow_id: wf.body.id, task: undefined, overlap: "queue" });
    expect(s).toMatchObject({ workflow_id: wf.body.id, task: null });
    const job = (await post(`/api/v1/schedules/${s.id}/trigger`)).body;
    expect(job).toMatchObject({ kind: "workflow", workflow_id: wf.body.id, step_count: 2, schedule_id: s.id });
    expect((await del(`/api/v1/workflows/${wf.body.id}`)).status).toBe(200);
    await runDue(s.id, Date.parse(s.created_at) + HOUR_MS);
    expect(await schedule(s.id)).toMatchObject({ run_count: 1, skipped_count: 1, last_skip: `workflow ${wf.body.id} no longer exists` });
    expectError(await post(`/api/v1/schedules/${s.id}/trigger`), 404, "workflow_not_found");
  });

  it("a lost alarm is found by the sweeper (the armed due time long past) and what was due runs", async () => {
    const s = await create({ every_seconds: 3600, catch_up: "last" });
    const anchor = Date.parse(s.created_at);
    expect(s.next_run_at).toBe(new Date(anchor + HOUR_MS).toISOString());
    // The runtime was killed: the alarm is gone, and the object last handled the time before the first due.
    await runInDurableObject(runner(s.id), async (_obj, state) => {
      await state.storage.deleteAlarm();
      await state.storage.put("cursor", anchor - 1);
    });
    await env.DB.prepare("UPDATE schedules SET next_run_at = ? WHERE id = ?").bind(anchor, s.id).run();
    // A sweep a minute later re-arms it; the alarm fires at once and runs the due time it had missed.
    const report = await sweep({ ...createCtx(env), now: () => Date.now() + 60_000 });
    expect(report.schedulesRearmed).toBeGreaterThanOrEqual(1);
    const [run] = await eventually(
      async () => {
        const runs = await runsOf(s.id);
        return runs.length > 0 && runs;
      },
      5000,
      "the missed run",
    );
    expect(run.scheduled_for).toBe(new Date(anchor).toISOString());
    // The run is written before the schedule's next due time (two writes): wait for the second.
    const nextRunAt = new Date(anchor + HOUR_MS).toISOString();
    await eventually(async () => (await schedule(s.id)).next_run_at === nextRunAt, 5000, "the next due time written");
    expect((await schedule(s.id)).next_run_at).toBe(nextRunAt);
    // Healthy again: the next sweep leaves it alone.
    const before = (await schedule(s.id)).run_count;
    await sweep({ ...createCtx(env), now: () => Date.now() + 60_000 });
    expect((await schedule(s.id)).run_count).toBe(before);
  });

  it("the real alarm fires within 2 s of the due time, and a connected bot runs the task it makes", async () => {
    const cap = uniqueCapability("schlive");
    const bot = await registerBot([cap]);
    const sock = await BotSocket.open(bot.id, bot.token);
    await sock.next("connected");
    const s = await create({ every_seconds: 2, task: { payload: { live: true }, capability: cap } });
    const assigned = await sock.next("task_assigned", 8000);
    expect(assigned.payload.task_payload).toEqual({ live: true });
    sock.send({ type: "task_complete", payload: { task_id: assigned.payload.task_id, result: { ok: 1 } } });
    const [run] = await runsOf(s.id);
    expect(Date.parse(run.created_at) - Date.parse(run.scheduled_for)).toBeLessThan(2000);
    expect(Date.parse(run.scheduled_for) - Date.parse(s.created_at)).toBe(2000);
    await eventually(async () => (await get(`/api/v1/jobs/${run.id}`)).body.status === "completed", 5000, "the run to complete");
    expect((await post(`/api/v1/schedules/${s.id}/pause`)).status).toBe(200);
    sock.close();
  });
});
