/**
 * Workflow steps and their status (pure). A step's runs are task rows: one,
 * or more when it loops (`repeat_until`, a `goto` back to it: a new row per
 * iteration) or fans out (`for_each`: a row per item of its current
 * iteration). What happens after a run ends is step-plan.ts.
 */
import type { StepOutcome } from "./conditions";
import { isFinalTaskStatus, type TaskStatus } from "./task-machine";

export const WORKFLOW_STATUSES = ["pending", "in_progress", "completed", "failed", "cancelled"] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

export const ON_FAILURE = ["fail", "continue", "goto"] as const;
export type OnFailure = (typeof ON_FAILURE)[number];

/** Items one `for_each` may fan out to, and how many of them may run at once. */
export const MAX_FOR_EACH_ITEMS = 100;
export const MAX_PARALLELISM = 50;
/** Runs one looping step may make (`repeat_until`, a `goto` back). */
export const MAX_ITERATIONS = 100;

/** A step's own rules (stored with its task; a job's copies carry them too). */
export interface StepRules {
  /** CEL over the earlier steps: false skips the step (core/conditions.ts). */
  when?: string;
  /** `continue`: a failure does not fail the run; `goto`: the run goes on at step `gotoStep`. */
  onFailure?: OnFailure;
  gotoStep?: number;
  /** CEL over the earlier steps and this one: after a run completes, false runs the step again. */
  repeatUntil?: string;
  /** Bounds `repeat_until` and a `goto` to this step or an earlier one: the most runs this step makes. */
  maxIterations?: number;
  /** CEL giving a list from earlier results: the step runs once per item (`item` and `item_index` in its payload). */
  forEach?: string;
  /** Items of a `for_each` that may run at once (1: one after another). */
  parallelism?: number;
}

/** The error code of a step skipped by its condition (its task is `cancelled`). */
export const SKIPPED = "skipped";
/** The error code of a step whose condition could not be evaluated (its task is `failed`). */
export const CONDITION_ERROR = "condition_error";
/** The error code of a loop that ran `max_iterations` times without its `repeat_until` holding. */
export const MAX_ITERATIONS_REACHED = "max_iterations";

/** One run of a step: a task row as the plan sees it. */
export interface StepState {
  taskId: string;
  stepIndex: number;
  /** 0 for the first run; a loop adds one per run. */
  iteration?: number;
  /** The item of a `for_each` this run works on (null: the step has not fanned out). */
  itemIndex?: number | null;
  status: TaskStatus;
  released: boolean;
  rules?: StepRules | null;
  result?: unknown;
  error?: string | null;
  errorCode?: string | null;
  /** How far a running run says it is (0–100), from its bot's `task_progress`. */
  progress?: number | null;
}

/** A step as a whole: its current iteration's runs folded into one (what conditions, statuses and jobs read). */
export type StepView<S extends StepState = StepState> = S & { iterations: number; runs: number };

export const skipped = (s: StepState) => s.status === "cancelled" && s.errorCode === SKIPPED;
/** Failed, and the step says the run goes on (after it, or at a later step). */
export const tolerated = (s: StepState) =>
  s.status === "failed" &&
  s.errorCode !== CONDITION_ERROR &&
  (s.rules?.onFailure === "continue" || (s.rules?.onFailure === "goto" && (s.rules.gotoStep ?? 0) > s.stepIndex));
/** Nothing more will happen to this step and it does not stop the run. */
export const settledOk = (s: StepState) => s.status === "completed" || skipped(s) || tolerated(s);

export const iterationOf = (r: StepState) => r.iteration ?? 0;

/** The runs of step `stepIndex` that stand for it now: its latest iteration's (its items, once it fanned out). */
export function currentRuns<S extends StepState>(rows: readonly S[], stepIndex: number): S[] {
  const mine = rows.filter((r) => r.stepIndex === stepIndex);
  const latest = Math.max(0, ...mine.map(iterationOf));
  const runs = mine.filter((r) => iterationOf(r) === latest);
  const items = runs.filter((r) => r.itemIndex !== null && r.itemIndex !== undefined);
  return (items.length ? items : runs).sort((a, b) => (a.itemIndex ?? 0) - (b.itemIndex ?? 0));
}

/**
 * Runs folded into their step: a run that is not an item is the step; a step's items (one or more) are
 * failed if one failed (its error), cancelled if one was, completed when all
 * are (the result: their results in item order), otherwise as far as the
 * furthest along.
 */
export function foldRuns<S extends StepState>(runs: readonly S[], iterations: number): StepView<S> {
  const first = runs[0]!;
  const fannedOut = first.itemIndex !== null && first.itemIndex !== undefined;
  if (!fannedOut) return { ...first, iterations, runs: 1 };
  const failed = runs.find((r) => r.status === "failed");
  const cancelled = runs.find((r) => r.status === "cancelled");
  // A fanned-out step is as far along as its items together.
  const progress =
    runs.reduce((sum, r) => sum + (r.status === "completed" ? 100 : isFinalTaskStatus(r.status) ? 0 : (r.progress ?? 0)), 0) / runs.length;
  const base = { ...first, iterations, runs: runs.length, released: runs.some((r) => r.released), progress };
  if (failed) {
    return {
      ...base,
      status: "failed",
      result: null,
      error: `item ${failed.itemIndex}: ${failed.error ?? "failed"}`,
      errorCode: failed.errorCode,
    };
  }
  if (cancelled) return { ...base, status: "cancelled", result: null, error: cancelled.error, errorCode: cancelled.errorCode };
  if (runs.every((r) => r.status === "completed")) return { ...base, status: "completed", result: runs.map((r) => r.result ?? null) };
  const furthest: TaskStatus = runs.some((r) => r.status === "in_progress" || r.status === "completed")
    ? "in_progress"
    : runs.some((r) => r.status === "assigned")
      ? "assigned"
      : "pending";
  return { ...base, status: furthest, result: null, error: null, errorCode: null };
}

/** Every step as a whole, in step order. */
export function stepViews<S extends StepState>(rows: readonly S[]): StepView<S>[] {
  const indexes = [...new Set(rows.map((r) => r.stepIndex))].sort((a, b) => a - b);
  return indexes.map((i) => stepView(rows, i));
}

/** Step `stepIndex` as a whole: its current runs folded, with how many times it has run. */
export function stepView<S extends StepState>(rows: readonly S[], stepIndex: number): StepView<S> {
  const iterations = Math.max(0, ...rows.filter((r) => r.stepIndex === stepIndex).map(iterationOf)) + 1;
  return foldRuns(currentRuns(rows, stepIndex), iterations);
}

/**
 * - a failed step (not tolerated) → failed; a cancelled one (not skipped) → cancelled
 * - every step completed, skipped or tolerated → completed
 * - some step released → in_progress; otherwise (not started) → pending
 */
export function aggregateWorkflowStatus(steps: readonly StepState[]): WorkflowStatus {
  if (steps.some((s) => s.status === "failed" && !tolerated(s))) return "failed";
  if (steps.some((s) => s.status === "cancelled" && !skipped(s))) return "cancelled";
  if (steps.length > 0 && steps.every(settledOk)) return "completed";
  if (steps.some((s) => s.released)) return "in_progress";
  return "pending";
}

/** What a condition reads of a step. */
export const outcomeOf = (s: StepView): StepOutcome => ({
  status: skipped(s) ? "skipped" : isFinalTaskStatus(s.status) ? (s.status as StepOutcome["status"]) : "pending",
  result: s.result ?? null,
  error: s.error ?? null,
  errorCode: s.errorCode ?? null,
  iterations: s.iterations,
});
