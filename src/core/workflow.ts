/**
 * Workflow status aggregated from its steps, and what happens after a step
 * ends (pure): release the next step whose condition holds (skipping those
 * whose `when` is false), go on after a failure the step tolerates
 * (`on_failure: continue`), or cancel what has not run.
 */
import { evaluateCondition, type StepOutcome } from "./conditions";
import type { TaskStatus } from "./task-machine";

export const WORKFLOW_STATUSES = ["pending", "in_progress", "completed", "failed", "cancelled"] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

export const ON_FAILURE = ["fail", "continue"] as const;
export type OnFailure = (typeof ON_FAILURE)[number];

/** A step's own rules (stored with its task; a job's copies carry them too). */
export interface StepRules {
  /** CEL over the earlier steps: false skips the step (core/conditions.ts). */
  when?: string;
  /** `continue`: a failure of this step does not fail the run; the next step is considered. */
  onFailure?: OnFailure;
}

/** The error code of a step skipped by its condition (its task is `cancelled`). */
export const SKIPPED = "skipped";
/** The error code of a step whose condition could not be evaluated (its task is `failed`). */
export const CONDITION_ERROR = "condition_error";

export interface StepState {
  stepIndex: number;
  status: TaskStatus;
  released: boolean;
  rules?: StepRules | null;
  result?: unknown;
  error?: string | null;
  errorCode?: string | null;
}

const skipped = (s: StepState) => s.status === "cancelled" && s.errorCode === SKIPPED;
/** Failed, and the step says the run goes on. */
export const tolerated = (s: StepState) => s.status === "failed" && s.rules?.onFailure === "continue" && s.errorCode !== CONDITION_ERROR;
/** Nothing more will happen to this step and it does not stop the run. */
export const settledOk = (s: StepState) => s.status === "completed" || skipped(s) || tolerated(s);

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

/** One decision of the plan, for the job's watchers. */
export interface StepDecision {
  step_index: number;
  decision: "run" | "skipped" | "continued_after_failure" | "condition_error";
  when?: string;
  error?: string;
}

export interface StepPlan<S extends StepState = StepState> {
  /** Step to release now (its predecessor ended and its condition holds). */
  release: number | null;
  /** Unstarted steps to cancel (a step failed or was cancelled). */
  cancel: number[];
  /** Steps skipped: their condition was false. */
  skip: number[];
  /** A step whose condition could not be evaluated: it fails (and the run with it). */
  conditionFailed: { stepIndex: number; error: string } | null;
  decisions: StepDecision[];
  status: WorkflowStatus;
  /** Every step as it is once the plan is applied (a job folds these into its status and progress). */
  steps: S[];
}

const outcomeOf = (s: StepState): StepOutcome => ({
  status: skipped(s) ? "skipped" : s.status === "completed" || s.status === "failed" || s.status === "cancelled" ? s.status : "pending",
  result: s.result ?? null,
  error: s.error ?? null,
  errorCode: s.errorCode ?? null,
});

/** What a workflow (or a job's run of steps) does when step `stepIndex` reaches `ended.status`. */
export function planAfterStepChange<S extends StepState>(
  steps: readonly S[],
  stepIndex: number,
  ended: TaskStatus | { status: TaskStatus; result?: unknown; error?: string | null; errorCode?: string | null },
): StepPlan<S> {
  const change = typeof ended === "string" ? { status: ended } : ended;
  // Copies: the plan marks skipped and failed steps on its own working list, never on the caller's.
  const work: S[] = steps
    .map((s) => (s.stepIndex === stepIndex ? { ...s, ...change } : { ...s }))
    .sort((a, b) => a.stepIndex - b.stepIndex);
  const plan: StepPlan<S> = { release: null, cancel: [], skip: [], conditionFailed: null, decisions: [], status: "pending", steps: work };
  const current = work.find((s) => s.stepIndex === stepIndex);
  const goesOn = current !== undefined && (current.status === "completed" || tolerated(current));
  if (current && tolerated(current)) plan.decisions.push({ step_index: stepIndex, decision: "continued_after_failure" });
  let stopped = current !== undefined && !goesOn && (current.status === "failed" || current.status === "cancelled");
  if (goesOn) {
    for (const next of work.filter((s) => s.stepIndex > stepIndex)) {
      if (next.released || next.status !== "pending") break;
      const when = next.rules?.when;
      if (!when) {
        plan.release = next.stepIndex;
        break;
      }
      const earlier = work.filter((s) => s.stepIndex < next.stepIndex).map(outcomeOf);
      const verdict = evaluateCondition(when, earlier);
      if (!verdict.ok) {
        plan.conditionFailed = { stepIndex: next.stepIndex, error: `the condition of step ${next.stepIndex} failed: ${verdict.error}` };
        plan.decisions.push({ step_index: next.stepIndex, decision: "condition_error", when, error: verdict.error });
        Object.assign(next, { status: "failed", error: plan.conditionFailed.error, errorCode: CONDITION_ERROR });
        stopped = true;
        break;
      }
      plan.decisions.push({ step_index: next.stepIndex, decision: verdict.value ? "run" : "skipped", when });
      if (verdict.value) {
        plan.release = next.stepIndex;
        break;
      }
      plan.skip.push(next.stepIndex);
      Object.assign(next, { status: "cancelled", error: `skipped: ${when} was false`, errorCode: SKIPPED });
    }
  }
  if (stopped) plan.cancel = work.filter((s) => s.status === "pending" && s.stepIndex !== stepIndex).map((s) => s.stepIndex);
  plan.steps = work.map((s): S => {
    if (s.stepIndex === plan.release) return { ...s, released: true };
    if (plan.cancel.includes(s.stepIndex)) return { ...s, status: "cancelled" };
    return s;
  });
  plan.status = aggregateWorkflowStatus(plan.steps);
  return plan;
}
