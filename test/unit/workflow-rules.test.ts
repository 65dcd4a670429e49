import { describe, expect, it } from "vitest";
import { jobProgressOf, jobStatusOf } from "../../src/core/job";
import { aggregateWorkflowStatus, CONDITION_ERROR, planAfterStepChange, SKIPPED, type StepState } from "../../src/core/workflow";

const step = (stepIndex: number, rules: StepState["rules"] = null, over: Partial<StepState> = {}): StepState => ({
  stepIndex,
  status: "pending",
  released: stepIndex === 0,
  rules,
  ...over,
});

describe("step rules: when (CEL) and on_failure", () => {
  it("a true condition releases its step; a false one skips it and the next is considered", () => {
    const steps = [
      step(0, null, { status: "in_progress" }),
      step(1, { when: "steps[0].result.count > 3" }),
      step(2, { when: "steps[1].status == 'skipped'" }),
      step(3),
    ];
    const big = planAfterStepChange(steps, 0, { status: "completed", result: { count: 5 } });
    expect(big).toMatchObject({ release: 1, skip: [], cancel: [], status: "in_progress" });
    expect(big.decisions).toEqual([{ step_index: 1, decision: "run", when: "steps[0].result.count > 3" }]);

    const small = planAfterStepChange(steps, 0, { status: "completed", result: { count: 2 } });
    expect(small).toMatchObject({ release: 2, skip: [1] });
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
    const plan = planAfterStepChange(steps, 0, { status: "completed", result: 1 });
    expect(plan).toMatchObject({ release: null, skip: [1, 2], status: "completed" });
    expect(jobStatusOf(plan.steps)).toBe("completed");
    expect(jobProgressOf(plan.steps)).toBe(100);
  });

  it("on_failure continue: the run goes on and can still complete; fail (the default) cancels the rest", () => {
    const tolerant = [step(0, { onFailure: "continue" }, { status: "in_progress" }), step(1, { when: "steps[0].status == 'failed'" })];
    const goesOn = planAfterStepChange(tolerant, 0, { status: "failed", error: "boom", errorCode: "bot_error" });
    expect(goesOn).toMatchObject({ release: 1, cancel: [], status: "in_progress" });
    expect(goesOn.decisions[0]).toEqual({ step_index: 0, decision: "continued_after_failure" });
    const finished = planAfterStepChange(goesOn.steps, 1, { status: "completed" });
    expect(finished.status).toBe("completed");
    expect(jobStatusOf(finished.steps)).toBe("completed");

    const strict = [step(0, null, { status: "in_progress" }), step(1), step(2, { when: "true" })];
    const stops = planAfterStepChange(strict, 0, { status: "failed" });
    expect(stops).toMatchObject({ release: null, cancel: [1, 2], status: "failed" });
  });

  it("a condition that cannot be evaluated fails its step and the run (never a silent skip)", () => {
    const steps = [step(0, null, { status: "in_progress" }), step(1, { when: "steps[0].result.missing > 1" }), step(2)];
    const plan = planAfterStepChange(steps, 0, { status: "completed", result: {} });
    expect(plan.conditionFailed?.stepIndex).toBe(1);
    expect(plan.steps[1]).toMatchObject({ status: "failed", errorCode: CONDITION_ERROR });
    expect(plan).toMatchObject({ release: null, cancel: [2], status: "failed" });
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
