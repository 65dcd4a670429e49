/**
 * Conditional workflows: a step's `when` (CEL over the earlier steps) runs or
 * skips it, `on_failure: continue` lets the run go on, a condition that cannot
 * be evaluated fails the run; each decision is an event in the job's stream;
 * a bad definition is refused at creation.
 */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { expectError, get, post, StreamSocket, uniqueCapability } from "../helpers/api";
import { connectedBot, createWorkflow } from "../helpers/workflows";

const stepsOf = async (jobId: string) =>
  (
    await env.DB.prepare("SELECT step_index, status, error_code FROM tasks WHERE job_id = ? ORDER BY step_index").bind(jobId).all()
  ).results.map((r: any) => [r.step_index, r.status, r.error_code]);

describe("conditional workflows", () => {
  it("a false condition skips its step, a true one runs it; the decisions are in the job's stream", async () => {
    const cap = uniqueCapability("when");
    const id = await createWorkflow(cap, [
      { payload: { n: 0 } },
      { payload: { n: 1 }, when: "steps[0].result.count > 3" },
      { payload: { n: 2 }, when: "steps[0].status == 'completed' && steps[1].status == 'skipped'" },
    ]);
    const listed = (await get(`/api/v1/workflows/${id}/tasks`)).body.tasks;
    expect(listed.map((t: any) => [t.when, t.on_failure])).toEqual([
      [null, null],
      ["steps[0].result.count > 3", "fail"],
      ["steps[0].status == 'completed' && steps[1].status == 'skipped'", "fail"],
    ]);
    const job = (await post(`/api/v1/workflows/${id}/execute`)).body;
    const watcher = await StreamSocket.open(job.websocket_url);
    const sock = await connectedBot(cap);

    const first = await sock.next("task_assigned");
    expect(first.payload.task_payload).toEqual({ n: 0 });
    await sock.complete(first.payload.task_id, { count: 2 });
    const skippedDecision = await watcher.waitFor("the skip", (m) => m.type === "decision" && m.data.step_index === 1);
    expect(skippedDecision.data).toEqual({ step_index: 1, decision: "skipped", when: "steps[0].result.count > 3" });
    await watcher.waitFor("the run", (m) => m.type === "decision" && m.data.step_index === 2 && m.data.decision === "run");

    const third = await sock.next("task_assigned");
    expect(third.payload.task_payload).toEqual({ n: 2 });
    await sock.complete(third.payload.task_id, { done: true });
    const complete = await watcher.waitFor("the end", (m) => m.type === "complete");
    expect(complete.data).toMatchObject({ status: "completed", progress: 100, result: { done: true } });
    expect(await stepsOf(job.id)).toEqual([
      [0, "completed", null],
      [1, "cancelled", "skipped"],
      [2, "completed", null],
    ]);
    expect((await get(`/api/v1/jobs/${job.id}`)).body).toMatchObject({ status: "completed", progress: 100 });
    // The skipped step's own history says why it never ran.
    const skippedId = (await get(`/api/v1/jobs/${job.id}/result`)).body.steps[1].task_id;
    const history = (await get(`/api/v1/tasks/${skippedId}/events`)).body;
    expect(history.map((e: any) => [e.type, e.data.error_code ?? null])).toEqual([
      ["task_created", null],
      ["task_cancelled", "skipped"],
    ]);
    expect(history[1].data.error).toBe("skipped: steps[0].result.count > 3 was false");
    watcher.close();
    sock.close();
  });

  it("on_failure continue: a failed step does not fail the run; the next step can read the failure", async () => {
    const cap = uniqueCapability("cont");
    const id = await createWorkflow(cap, [
      { payload: { n: 0 }, on_failure: "continue" },
      { payload: { n: 1 }, when: "steps[0].status == 'failed' && steps[0].error_code == 'bot_error'" },
    ]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const sock = await connectedBot(cap);
    const first = await sock.next("task_assigned");
    await sock.complete(first.payload.task_id, { reason: "broken" }, false);
    const second = await sock.next("task_assigned");
    expect(second.payload.task_payload).toEqual({ n: 1 });
    await sock.complete(second.payload.task_id, { recovered: true });
    await expect.poll(async () => (await get(`/api/v1/jobs/${job.id}`)).body.status, { timeout: 5000 }).toBe("completed");
    expect(await stepsOf(job.id)).toEqual([
      [0, "failed", "bot_error"],
      [1, "completed", null],
    ]);
    sock.close();
  });

  it("a condition that cannot be evaluated fails the run with condition_error; the default on_failure stops it", async () => {
    const cap = uniqueCapability("cerr");
    const id = await createWorkflow(cap, [{ payload: {} }, { payload: {}, when: "steps[0].result.missing > 1" }, { payload: {} }]);
    const job = (await post(`/api/v1/jobs`, { workflow_id: id })).body;
    const sock = await connectedBot(cap);
    await sock.complete((await sock.next("task_assigned")).payload.task_id, {});
    await expect.poll(async () => (await get(`/api/v1/jobs/${job.id}`)).body.status, { timeout: 5000 }).toBe("failed");
    const failed = (await get(`/api/v1/jobs/${job.id}`)).body;
    expect(failed).toMatchObject({ error_code: "condition_error", error: expect.stringMatching(/^the condition of step 1 failed/) });
    expect(await stepsOf(job.id)).toEqual([
      [0, "completed", null],
      [1, "failed", "condition_error"],
      [2, "cancelled", "cancelled"],
    ]);
    sock.close();
  });

  it("a bad definition is a 400 naming the step, and nothing is created", async () => {
    const count = async () => (await env.DB.prepare("SELECT count(*) n FROM workflows").first<{ n: number }>())!.n;
    const before = await count();
    for (const [steps, path, message] of [
      [[{ when: "true" }, {}], "steps.0.when", /first step always runs/],
      [[{}, { when: "steps[0].status ==" }], "steps.1.when", /Unexpected/],
      [[{}, { when: "steps[1].status == 'completed'" }], "steps.1.when", /not an earlier step/],
      [[{}, { when: "nope == 1" }], "steps.1.when", /Unknown variable/],
      [[{}, { when: `${"1 + ".repeat(150)}1 > 0` }], "steps.1.when", /maxAstNodes/],
      [[{}, { on_failure: "retry" }], "steps.1.on_failure", /./],
    ] as const) {
      const res = await post("/api/v1/workflows", { name: "bad", steps });
      expectError(res, 400, "validation_failed");
      const text = JSON.stringify(res.body.error);
      expect(text, JSON.stringify(steps)).toContain(path);
      expect(text).toMatch(message);
    }
    expect(await count()).toBe(before);
  });
});
