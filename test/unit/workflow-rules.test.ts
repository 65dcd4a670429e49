import { describe, expect, it } from "vitest";
import { jobChangeOf, jobProgressOf, jobStatusOf } from "../../src/core/job";
import { planAfterStepChange, type StepPlan } from "../../src/core/step-plan";
import {
  aggregateWorkflowStatus,
  CONDITION_ERROR,
  MAX_ITERATIONS_REACHED,
  SKIPPED,
  type StepState,
  stepViews,
} from "../../src/core/workflow";

const step = (stepIndex: number, rules: StepState["rules"] = null, over: Partial<StepState> = {}): StepState => ({
  taskId: `t${stepIndex}`,
  stepIndex,
  status: "pending",
  released: stepIndex === 0,
  rules,
  ...over,
});

/** New runs get predictable ids: n1, n2, … */
const ids = () => {
  let n = 0;
  return () => `n${++n}`;
};

/** The rows as they are once a plan is applied (what the next plan reads back from D1). */
function applied(rows: StepState[], plan: StepPlan, changed: string, change: Partial<StepState>): StepState[] {
  const out = rows.map((r) => (r.taskId === changed ? { ...r, ...change } : { ...r }));
  for (const c of plan.create) {
    const from = out.find((r) => r.taskId === c.fromTaskId)!;
    out.push({
      ...from,
      taskId: c.taskId,
      iteration: c.iteration,
      itemIndex: c.itemIndex,
      status: "pending",
      released: c.released,
      result: null,
    });
  }
  const at = (id: string) => out.find((r) => r.taskId === id)!;
  if (plan.firstItem) Object.assign(at(plan.firstItem.taskId), { itemIndex: 0, released: true });
  for (const id of plan.release) at(id).released = true;
  for (const s of plan.skip) Object.assign(at(s.taskId), { status: "cancelled", errorCode: SKIPPED, error: s.error });
  for (const f of plan.fail) Object.assign(at(f.taskId), { status: "failed", errorCode: f.errorCode, error: f.error });
  for (const c of plan.cancel) Object.assign(at(c.taskId), { status: "cancelled", errorCode: "cancelled", error: c.error });
  return out;
}

describe("step rules: when (CEL) and on_failure", () => {
  it("a true condition releases its step; a false one skips it and the next is considered", () => {
    const steps = [
      step(0, null, { status: "in_progress" }),
      step(1, { when: "steps[0].result.count > 3" }),
      step(2, { when: "steps[1].status == 'skipped'" }),
      step(3),
    ];
    const big = planAfterStepChange(steps, "t0", { status: "completed", result: { count: 5 } });
    expect(big).toMatchObject({ release: ["t1"], skip: [], cancel: [], status: "in_progress" });
    expect(big.decisions).toEqual([{ step_index: 1, decision: "run", when: "steps[0].result.count > 3" }]);

    const small = planAfterStepChange(steps, "t0", { status: "completed", result: { count: 2 } });
    expect(small).toMatchObject({ release: ["t2"], skip: [{ taskId: "t1", error: "skipped: steps[0].result.count > 3 was false" }] });
    expect(small.decisions.map((d) => d.decision)).toEqual(["skipped", "run"]);
    expect(small.steps[1]).toMatchObject({ status: "cancelled", errorCode: SKIPPED });
    expect(steps[1]!.status).toBe("pending"); // the caller's list is left alone
  });

  it("skipping the last steps completes the run, with progress 100", () => {
    const steps = [
      step(0, null, { status: "in_progress" }),
      step(1, { when: "false" }),
      step(2, { when: "steps[1].status == 'completed'" }),
    ];
    const plan = planAfterStepChange(steps, "t0", { status: "completed", result: 1 });
    expect(plan).toMatchObject({ release: [], status: "completed" });
    expect(plan.skip.map((s) => s.taskId)).toEqual(["t1", "t2"]);
    expect(jobStatusOf(plan.steps)).toBe("completed");
    expect(jobProgressOf(plan.steps)).toBe(100);
  });

  it("on_failure continue: the run goes on and can still complete; fail (the default) cancels the rest", () => {
    const tolerant = [step(0, { onFailure: "continue" }, { status: "in_progress" }), step(1, { when: "steps[0].status == 'failed'" })];
    const goesOn = planAfterStepChange(tolerant, "t0", { status: "failed", error: "boom", errorCode: "bot_error" });
    expect(goesOn).toMatchObject({ release: ["t1"], cancel: [], status: "in_progress" });
    expect(goesOn.decisions[0]).toEqual({ step_index: 0, decision: "continued_after_failure" });
    const finished = planAfterStepChange(goesOn.steps, "t1", { status: "completed" });
    expect(finished.status).toBe("completed");
    expect(jobStatusOf(finished.steps)).toBe("completed");

    const strict = [step(0, null, { status: "in_progress" }), step(1), step(2, { when: "true" })];
    const stops = planAfterStepChange(strict, "t0", { status: "failed" });
    expect(stops).toMatchObject({ release: [], status: "failed" });
    expect(stops.cancel.map((c) => c.taskId)).toEqual(["t1", "t2"]);
  });

  it("a condition that cannot be evaluated fails its step and the run (never a silent skip)", () => {
    const steps = [step(0, null, { status: "in_progress" }), step(1, { when: "steps[0].result.missing > 1" }), step(2)];
    const plan = planAfterStepChange(steps, "t0", { status: "completed", result: {} });
    expect(plan.fail).toEqual([
      { taskId: "t1", errorCode: CONDITION_ERROR, error: expect.stringMatching(/^the condition of step 1 failed/) },
    ]);
    expect(plan.steps[1]).toMatchObject({ status: "failed", errorCode: CONDITION_ERROR });
    expect(plan).toMatchObject({ release: [], status: "failed" });
    expect(plan.cancel.map((c) => c.taskId)).toEqual(["t2"]);
    expect(plan.decisions[0]).toMatchObject({ step_index: 1, decision: "condition_error" });
  });

  it("a skipped step is not a cancellation; a cancelled one still is", () => {
    expect(
      aggregateWorkflowStatus([step(0, null, { status: "completed" }), step(1, null, { status: "cancelled", errorCode: SKIPPED })]),
    ).toBe("completed");
    expect(
      aggregateWorkflowStatus([step(0, null, { status: "completed" }), step(1, null, { status: "cancelled", errorCode: "cancelled" })]),
    ).toBe("cancelled");
  });
});

describe("loops: repeat_until with max_iterations", () => {
  const loop = { repeatUntil: "steps[0].result.n >= 3", maxIterations: 3 };

  it("while the condition is false the step runs again (a new run, released at once); once true the run goes on", () => {
    const newId = ids();
    let rows = [step(0, loop, { status: "in_progress" }), step(1)];
    const again = planAfterStepChange(rows, "t0", { status: "completed", result: { n: 1 } }, newId);
    expect(again.create).toEqual([{ taskId: "n1", fromTaskId: "t0", stepIndex: 0, iteration: 1, itemIndex: null, released: true }]);
    expect(again.decisions).toEqual([{ step_index: 0, decision: "repeat", when: loop.repeatUntil, iteration: 1 }]);
    expect(again).toMatchObject({ release: [], status: "in_progress" });
    expect(jobStatusOf(again.steps)).toBe("running"); // not back to queued: the step has run before
    expect(again.steps[0]).toMatchObject({ taskId: "n1", iterations: 2, status: "pending" });

    rows = applied(rows, again, "t0", { status: "completed", result: { n: 1 } });
    rows = rows.map((r) => (r.taskId === "n1" ? { ...r, status: "in_progress" } : r));
    const met = planAfterStepChange(rows, "n1", { status: "completed", result: { n: 3 } }, newId);
    expect(met.create).toEqual([]);
    expect(met.release).toEqual(["t1"]);
    expect(met.decisions).toEqual([{ step_index: 0, decision: "repeat_until_met", when: loop.repeatUntil, iteration: 1 }]);
    expect(met.steps[0]).toMatchObject({ status: "completed", result: { n: 3 }, iterations: 2 });
  });

  it("the step reads its own count: steps[i].iterations", () => {
    const rows = [step(0, { repeatUntil: "steps[0].iterations >= 2", maxIterations: 5 }, { status: "in_progress" })];
    expect(planAfterStepChange(rows, "t0", "completed", ids()).decisions[0]?.decision).toBe("repeat");
    const second = [
      { ...rows[0]!, status: "completed" as const },
      { ...rows[0]!, taskId: "n1", iteration: 1, status: "in_progress" as const },
    ];
    expect(planAfterStepChange(second, "n1", "completed", ids()).decisions[0]?.decision).toBe("repeat_until_met");
  });

  it("after max_iterations runs without the condition holding, the step fails (max_iterations); continue tolerates it", () => {
    const lastRun = (rules: StepState["rules"]) => [
      step(0, rules, { status: "completed", result: { n: 0 } }),
      step(0, rules, { taskId: "r1", iteration: 1, status: "completed", result: { n: 1 } }),
      step(0, rules, { taskId: "r2", iteration: 2, status: "in_progress" }),
      step(1),
    ];
    const fails = planAfterStepChange(lastRun(loop), "r2", { status: "completed", result: { n: 2 } }, ids());
    expect(fails.create).toEqual([]);
    expect(fails.fail).toEqual([
      { taskId: "r2", errorCode: MAX_ITERATIONS_REACHED, error: "repeat_until steps[0].result.n >= 3 was still false after 3 iterations" },
    ]);
    expect(fails.cancel.map((c) => c.taskId)).toEqual(["t1"]);
    expect(fails).toMatchObject({ status: "failed" });
    expect(fails.decisions[0]).toMatchObject({ decision: "max_iterations_reached", iteration: 2 });
    expect(jobChangeOf(fails.steps, { status: "completed" })).toMatchObject({ status: "failed", errorCode: MAX_ITERATIONS_REACHED });

    const goesOn = planAfterStepChange(lastRun({ ...loop, onFailure: "continue" }), "r2", { status: "completed", result: { n: 2 } }, ids());
    expect(goesOn).toMatchObject({ release: ["t1"], status: "in_progress" });
  });
});

describe("loops: on_failure goto", () => {
  it("goto a later step skips the steps between and goes on there; the run can complete", () => {
    const rows = [step(0, { onFailure: "goto", gotoStep: 2 }, { status: "in_progress" }), step(1), step(2)];
    const plan = planAfterStepChange(rows, "t0", { status: "failed", error: "no", errorCode: "bot_error" }, ids());
    expect(plan.skip).toEqual([{ taskId: "t1", error: "skipped: step 0 failed and the run went on at step 2" }]);
    expect(plan).toMatchObject({ release: ["t2"], status: "in_progress" });
    expect(plan.decisions[0]).toEqual({ step_index: 0, decision: "goto", to_step: 2 });
    const done = planAfterStepChange(plan.steps, "t2", "completed");
    expect(done.status).toBe("completed");
  });

  it("goto an earlier step runs it and the steps after it again, as new runs, up to max_iterations of the failing step", () => {
    const newId = ids();
    const rules = { onFailure: "goto" as const, gotoStep: 0, maxIterations: 2 };
    let rows = [step(0, null, { status: "completed", result: 1 }), step(1, rules, { status: "in_progress", released: true }), step(2)];
    const back = planAfterStepChange(rows, "t1", { status: "failed", errorCode: "bot_error" }, newId);
    expect(back.create.map((c) => [c.taskId, c.fromTaskId, c.stepIndex, c.iteration, c.released])).toEqual([
      ["n1", "t0", 0, 1, true],
      ["n2", "t1", 1, 1, false],
    ]);
    expect(back.decisions[0]).toEqual({ step_index: 1, decision: "goto", to_step: 0, iteration: 1 });
    expect(back).toMatchObject({ cancel: [], status: "in_progress" });
    expect(back.steps.map((s) => [s.taskId, s.status])).toEqual([
      ["n1", "pending"],
      ["n2", "pending"],
      ["t2", "pending"],
    ]);

    rows = applied(rows, back, "t1", { status: "failed", errorCode: "bot_error" });
    const next = planAfterStepChange(
      rows.map((r) => (r.taskId === "n1" ? { ...r, status: "in_progress" } : r)),
      "n1",
      "completed",
      newId,
    );
    expect(next.release).toEqual(["n2"]);
    // The second failure of step 1 is its last: the loop is spent, the run fails.
    rows = applied(rows, next, "n1", { status: "completed" }).map((r) => (r.taskId === "n2" ? { ...r, status: "in_progress" } : r));
    const spent = planAfterStepChange(rows, "n2", { status: "failed", errorCode: "bot_error" }, newId);
    expect(spent.create).toEqual([]);
    expect(spent.decisions[0]).toMatchObject({ decision: "goto_exhausted", to_step: 0, iteration: 1 });
    expect(spent).toMatchObject({ status: "failed" });
    expect(spent.cancel.map((c) => c.taskId)).toEqual(["t2"]);
  });

  it("a condition error is never jumped over: it fails the run", () => {
    const rows = [
      step(0, null, { status: "in_progress" }),
      step(1, { when: "steps[0].result.x > 1", onFailure: "goto", gotoStep: 2 }),
      step(2),
    ];
    const plan = planAfterStepChange(rows, "t0", { status: "completed", result: {} }, ids());
    expect(plan).toMatchObject({ release: [], status: "failed" });
    expect(plan.fail[0]).toMatchObject({ taskId: "t1", errorCode: CONDITION_ERROR });
  });
});

describe("loops: for_each with a parallelism limit", () => {
  const fan = { forEach: "steps[0].result.files", parallelism: 2 };
  /** Step 1 fanned out to three items: two running, one waiting. */
  const fannedOut = () => {
    const item = (taskId: string, itemIndex: number, over: Partial<StepState>) =>
      step(1, fan, { taskId, itemIndex, released: true, ...over });
    return [
      step(0, null, { status: "completed" }),
      item("t1", 0, { status: "in_progress" }),
      item("n1", 1, { status: "in_progress" }),
      item("n2", 2, { status: "pending", released: false }),
      step(2),
    ];
  };

  it("fans out: the step's run becomes item 0, the others are new runs, released up to the parallelism", () => {
    const rows = [step(0, null, { status: "in_progress" }), step(1, fan), step(2)];
    const plan = planAfterStepChange(rows, "t0", { status: "completed", result: { files: ["a", "b", "c"] } }, ids());
    expect(plan.firstItem).toEqual({ taskId: "t1", item: "a" });
    expect(plan.create.map((c) => [c.taskId, c.itemIndex, c.item, c.released])).toEqual([
      ["n1", 1, "b", true],
      ["n2", 2, "c", false],
    ]);
    expect(plan.decisions).toEqual([{ step_index: 1, decision: "for_each", when: fan.forEach, items: 3 }]);
    expect(plan.status).toBe("in_progress");
  });

  it("an item ending starts the next waiting one; the last makes the step complete with every item's result, in order", () => {
    const rows = fannedOut();
    const first = planAfterStepChange(rows, "n1", { status: "completed", result: "B" });
    expect(first).toMatchObject({ release: ["n2"], siblingsEnded: { stepIndex: 1, iteration: 0, ended: 0 } });
    expect(first.steps[1]).toMatchObject({ status: "in_progress", runs: 3 });

    const almost = rows.map((r) =>
      r.taskId === "n1"
        ? { ...r, status: "completed" as const, result: "B" }
        : r.taskId === "n2"
          ? { ...r, status: "completed" as const, result: "C" }
          : r,
    );
    const last = planAfterStepChange(almost, "t1", { status: "completed", result: "A" });
    expect(last.steps[1]).toMatchObject({ status: "completed", result: ["A", "B", "C"] });
    expect(last).toMatchObject({ release: ["t2"], siblingsEnded: { ended: 2 } });
  });

  it("an item that fails fails its step: waiting items are cancelled; one ending later changes nothing", () => {
    const rows = fannedOut();
    const plan = planAfterStepChange(rows, "n1", { status: "failed", error: "bad file", errorCode: "bot_error" });
    expect(plan.cancel.map((c) => c.taskId)).toEqual(["n2", "t2"]);
    expect(plan.steps[1]).toMatchObject({ status: "failed", error: "item 1: bad file" });
    expect(plan.status).toBe("failed");

    const after = applied(rows, plan, "n1", { status: "failed", error: "bad file", errorCode: "bot_error" });
    const late = planAfterStepChange(after, "t1", { status: "completed", result: "A" });
    expect(late).toMatchObject({ release: [], cancel: [], create: [], status: "failed" });
  });

  it("an empty list skips the step; a list that is not one (or too long) is a condition error", () => {
    const rows = [step(0, null, { status: "in_progress" }), step(1, fan), step(2)];
    const empty = planAfterStepChange(rows, "t0", { status: "completed", result: { files: [] } });
    expect(empty).toMatchObject({ release: ["t2"], firstItem: null });
    expect(empty.skip[0]).toMatchObject({ taskId: "t1", error: "skipped: for_each steps[0].result.files gave no items" });

    const notList = planAfterStepChange(rows, "t0", { status: "completed", result: { files: "a" } });
    expect(notList.fail[0]).toMatchObject({ taskId: "t1", errorCode: CONDITION_ERROR, error: expect.stringMatching(/not a list/) });
    const tooLong = planAfterStepChange(rows, "t0", { status: "completed", result: { files: Array.from({ length: 101 }, (_, i) => i) } });
    expect(tooLong.fail[0]?.error).toMatch(/101 items; at most 100/);
  });

  it("stepViews folds a step's runs: its latest iteration stands for it", () => {
    const views = stepViews([
      step(0, null, { status: "failed", errorCode: "bot_error" }),
      step(0, null, { taskId: "x", iteration: 1, status: "completed", result: 2 }),
    ]);
    expect(views).toHaveLength(1);
    expect(views[0]).toMatchObject({ taskId: "x", status: "completed", iterations: 2 });
  });
});
