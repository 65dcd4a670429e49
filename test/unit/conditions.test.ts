import { describe, expect, it } from "vitest";
import { conditionError, evaluateCondition, MAX_CONDITION_LENGTH, type StepOutcome } from "../../src/core/conditions";

const done = (result: unknown): StepOutcome => ({ status: "completed", result, error: null, errorCode: null });
const failed: StepOutcome = { status: "failed", result: null, error: "boom", errorCode: "bot_error" };

describe("step conditions (CEL)", () => {
  it("evaluates the issue's example over earlier steps' statuses and results", () => {
    const when = "steps[0].status == 'completed' && steps[1].result.count > 3";
    expect(evaluateCondition(when, [done({}), done({ count: 5 })])).toEqual({ ok: true, value: true });
    expect(evaluateCondition(when, [done({}), done({ count: 2 })])).toEqual({ ok: true, value: false });
    expect(evaluateCondition(when, [failed, done({ count: 5 })])).toEqual({ ok: true, value: false });
  });

  it("JSON whole numbers are ints, others doubles; macros and error fields work", () => {
    expect(evaluateCondition("steps[0].result.count + 1 == 6", [done({ count: 5 })])).toEqual({ ok: true, value: true });
    expect(evaluateCondition("steps[0].result.ratio > 0.5", [done({ ratio: 0.75 })])).toEqual({ ok: true, value: true });
    expect(evaluateCondition("steps[0].result.items.exists(i, i == 'b')", [done({ items: ["a", "b"] })])).toEqual({
      ok: true,
      value: true,
    });
    expect(evaluateCondition("steps[0].error_code == 'bot_error'", [failed])).toEqual({ ok: true, value: true });
    expect(evaluateCondition("steps.all(s, s.status == 'completed')", [done(1), failed])).toEqual({ ok: true, value: false });
  });

  it("an evaluation error or a non-boolean is an error, never a silent false", () => {
    expect(evaluateCondition("steps[0].result.missing > 1", [done({})])).toMatchObject({ ok: false });
    expect(evaluateCondition("steps[0].result.count", [done({ count: 1 })])).toEqual({
      ok: false,
      error: "the condition gave bigint, not a boolean",
    });
  });

  it("validates at creation: syntax, unknown names, later steps, size", () => {
    expect(conditionError("steps[0].status == 'completed'", 1)).toBeNull();
    expect(conditionError("steps[0].status ==", 1)).toMatch(/Unexpected/);
    expect(conditionError("unknown_var == 1", 1)).toMatch(/Unknown variable/);
    expect(conditionError("steps[1].status == 'completed'", 1)).toMatch(/steps\[1\] is not an earlier step/);
    expect(conditionError("steps[0].status == 'completed'", 0)).toMatch(/no step/);
    expect(conditionError(`${"1 + ".repeat(150)}1 > 0`, 1)).toMatch(/maxAstNodes/);
    expect(conditionError("x".repeat(MAX_CONDITION_LENGTH + 1), 1)).toMatch(/longer than/);
  });
});
