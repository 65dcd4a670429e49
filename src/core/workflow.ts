/** Workflow status aggregated from its tasks, and which step to release next (pure). */
import type { TaskStatus } from "./task-machine";

export const WORKFLOW_STATUSES = ["pending", "in_progress", "completed", "failed", "cancelled"] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

export interface StepState {
  stepIndex: number;
  status: TaskStatus;
  released: boolean;
}

/**
 * - any failed step → failed; any cancelled step (and none failed) → cancelled
 * - every step completed → completed
 * - some step released → in_progress; otherwise (not started) → pending
 */
export function aggregateWorkflowStatus(steps: readonly StepState[]): WorkflowStatus {
  if (steps.some((s) => s.status === "failed")) return "failed";
  if (steps.some((s) => s.status === "cancelled")) return "cancelled";
  if (steps.length > 0 && steps.every((s) => s.status === "completed")) return "completed";
  if (steps.some((s) => s.released)) return "in_progress";
  return "pending";
}

/** The step to release after `completedIndex` completed, or null if it was the last. */
function nextStepIndex(steps: readonly StepState[], completedIndex: number): number | null {
  const next = steps.find((s) => s.stepIndex === completedIndex + 1);
  return next && !next.released && next.status === "pending" ? next.stepIndex : null;
}

export interface StepPlan<S extends StepState = StepState> {
  /** Step to release now (its predecessor just completed). */
  release: number | null;
  /** Unstarted steps to cancel (a step failed or was cancelled). */
  cancel: number[];
  status: WorkflowStatus;
  /** Every step as it is once the plan is applied (a job folds these into its status and progress). */
  steps: S[];
}

/** What a workflow (or a job's run of steps) does when one of its steps reaches `newStatus`. */
export function planAfterStepChange<S extends StepState>(steps: readonly S[], stepIndex: number, newStatus: TaskStatus): StepPlan<S> {
  const after = steps.map((s) => (s.stepIndex === stepIndex ? { ...s, status: newStatus } : s));
  let release: number | null = null;
  let cancel: number[] = [];
  if (newStatus === "completed") release = nextStepIndex(after, stepIndex);
  if (newStatus === "failed" || newStatus === "cancelled") {
    cancel = after.filter((s) => s.stepIndex !== stepIndex && s.status === "pending").map((s) => s.stepIndex);
  }
  const final = after.map((s): S => {
    if (s.stepIndex === release) return { ...s, released: true };
    if (cancel.includes(s.stepIndex)) return { ...s, status: "cancelled" };
    return s;
  });
  return { release, cancel, status: aggregateWorkflowStatus(final), steps: final };
}
