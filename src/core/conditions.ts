/**
 * Step conditions in CEL, the Common Expression Language (what Kubernetes and
 * Hatchet use), evaluated by @marcbachmann/cel-js — never `eval`. A step's
 * `when` reads the steps before it:
 *
 *   steps[0].status == 'completed' && steps[1].result.count > 3
 *
 * `steps[i]` has `status` (completed, failed, skipped, cancelled), `result`,
 * `error`, `error_code` and `iterations` (how many times the step has run:
 * a loop's count). A step that ran more than once shows its latest run; a
 * `for_each` step's `result` is the list of its items' results. JSON integers are CEL ints, other numbers doubles.
 * The cost limit is structural and checked when the workflow is created: an
 * expression of at most MAX_CONDITION_LENGTH characters, MAX_AST_NODES nodes
 * and MAX_DEPTH levels (CEL has no loops or recursion, so that bounds its
 * work; its macros walk only the earlier steps' results, themselves bounded).
 */
import { Environment } from "@marcbachmann/cel-js";

export const MAX_CONDITION_LENGTH = 1000;
const MAX_AST_NODES = 200;
const MAX_DEPTH = 24;

const env = new Environment({
  homogeneousAggregateLiterals: false,
  limits: { maxAstNodes: MAX_AST_NODES, maxDepth: MAX_DEPTH, maxListElements: 100, maxMapEntries: 100, maxCallArguments: 8 },
}).registerVariable("steps", "list");

/** What a condition sees of one earlier step. */
export interface StepOutcome {
  status: "completed" | "failed" | "skipped" | "cancelled" | "pending";
  result: unknown;
  error: string | null;
  errorCode: string | null;
  /** Runs of the step so far (1 unless it looped). */
  iterations?: number;
}

/**
 * Why `when` cannot be the condition of step `stepIndex`, or null: it must
 * parse and type-check, and name only earlier steps (`steps[i]`, i < stepIndex;
 * with `readsSelf`, as a `repeat_until` does, the step itself too).
 */
export function conditionError(when: string, stepIndex: number, readsSelf = false): string | null {
  if (when.length > MAX_CONDITION_LENGTH) return `longer than ${MAX_CONDITION_LENGTH} characters`;
  try {
    const checked = env.check(when);
    if (!checked.valid) return firstLine(checked.error?.message ?? "does not type-check");
  } catch (err) {
    return firstLine((err as Error).message);
  }
  for (const m of when.matchAll(/\bsteps\s*\[\s*(\d+)\s*\]/g)) {
    const ref = Number(m[1]);
    if (readsSelf && ref === stepIndex) continue;
    if (ref >= stepIndex) {
      return `steps[${ref}] is not an earlier step (step ${stepIndex} can read steps[0]…steps[${stepIndex - 1}])`.replace(
        "steps[0]…steps[-1]",
        "no step",
      );
    }
  }
  return null;
}

const firstLine = (message: string) => message.split("\n")[0]!.trim();

export type ConditionResult = { ok: true; value: boolean } | { ok: false; error: string };

/** `when` over the steps before the one it guards. A non-boolean answer or an evaluation error is an error. */
export function evaluateCondition(when: string, earlier: readonly StepOutcome[]): ConditionResult {
  try {
    const value = env.evaluate(when, celSteps(earlier));
    if (typeof value !== "boolean") return { ok: false, error: `the condition gave ${typeof value}, not a boolean` };
    return { ok: true, value };
  } catch (err) {
    return { ok: false, error: firstLine((err as Error).message) };
  }
}

export type ListResult = { ok: true; value: unknown[] } | { ok: false; error: string };

/** A `for_each` expression: a list (of at most `maxItems`), as JSON again. Anything else is an error. */
export function evaluateList(expression: string, earlier: readonly StepOutcome[], maxItems: number): ListResult {
  try {
    const value = env.evaluate(expression, celSteps(earlier));
    if (!Array.isArray(value)) return { ok: false, error: `gave ${value === null ? "null" : typeof value}, not a list` };
    if (value.length > maxItems) return { ok: false, error: `gave ${value.length} items; at most ${maxItems}` };
    return { ok: true, value: value.map((v) => fromCel(v)) };
  } catch (err) {
    return { ok: false, error: firstLine((err as Error).message) };
  }
}

const celSteps = (earlier: readonly StepOutcome[]) => ({
  steps: earlier.map((s) => ({
    status: s.status,
    result: toCel(s.result),
    error: s.error,
    error_code: s.errorCode,
    iterations: BigInt(s.iterations ?? (s.status === "pending" ? 0 : 1)),
  })),
});

/** CEL's answer as JSON: ints back to numbers, maps to objects. */
function fromCel(value: unknown, depth = 0): unknown {
  if (depth > 32) return null;
  if (typeof value === "bigint") return Number(value);
  if (Array.isArray(value)) return value.map((v) => fromCel(v, depth + 1));
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), fromCel(v, depth + 1)]));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fromCel(v, depth + 1)]));
  }
  return value ?? null;
}

/** JSON as CEL sees it: whole numbers are ints (BigInt), so `count > 3` and `count + 1` work. */
function toCel(value: unknown, depth = 0): unknown {
  if (depth > 32) return null;
  if (typeof value === "number") return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (Array.isArray(value)) return value.map((v) => toCel(v, depth + 1));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toCel(v, depth + 1)]));
  }
  return value ?? null;
}
