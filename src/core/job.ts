/**
 * Jobs (seed 003): one execution of a workflow or of a single task, as a pure
 * fold over its steps (no I/O). A job's steps are tasks run strictly in order
 * (the workflow machine in workflow.ts releases them); the job adds seed 003's
 * words and a 0–100 progress figure.
 *
 *   queued → running → completed | failed | cancelled
 */
import { isHeld, type TaskStatus } from "./task-machine";
import { type StepState, settledOk, tolerated } from "./workflow";

export const JOB_STATUSES = ["queued", "running", "completed", "failed", "cancelled"] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

export const isFinalJobStatus = (s: JobStatus): boolean => s === "completed" || s === "failed" || s === "cancelled";

/** A step as the job sees it: the workflow's view plus how far the running step says it is. */
export interface JobStep extends StepState {
  /** The task's attempts, the current one included from its assignment on. */
  attempts?: number;
  /** Runs of the step so far (a loop's; stepViews sets it). */
  iterations?: number;
  /** The step's capability (a run the plan adds is counted under it). */
  capability?: string | null;
}

const STARTED: readonly TaskStatus[] = ["in_progress", "completed"];

/** An earlier attempt or iteration of this step ran and ended (it waits for, or is on, its retry or next run). */
const triedBefore = (s: JobStep) => (s.attempts ?? 0) > (isHeld(s.status) ? 1 : 0) || (s.iterations ?? 1) > 1;

/**
 * - a failed step → failed (unless it tolerates failure); a cancelled one → cancelled (unless its
 *   condition skipped it); every step completed, skipped or tolerated → completed;
 * - some step started by its bot (now, or in an earlier attempt) or finished → running; otherwise
 *   → queued (a step handed to a bot that has not said it started is still queued, as in seed 003).
 */
export function jobStatusOf(steps: readonly JobStep[]): JobStatus {
  if (steps.some((s) => s.status === "failed" && !tolerated(s))) return "failed";
  if (steps.some((s) => s.status === "cancelled" && !settledOk(s))) return "cancelled";
  if (steps.length > 0 && steps.every(settledOk)) return "completed";
  if (steps.some((s) => STARTED.includes(s.status) || triedBefore(s) || settledOk(s))) return "running";
  return "queued";
}

/**
 * Whole percent done: each completed (or skipped, or tolerated) step counts
 * in full, a step in progress by what its bot reported. 100 only when every
 * step is settled so (a job that failed keeps the progress it had made).
 */
export function jobProgressOf(steps: readonly JobStep[]): number {
  if (steps.length === 0) return 0;
  let done = 0;
  for (const s of steps) {
    if (settledOk(s)) done += 1;
    else if (s.status === "in_progress" || s.status === "assigned") done += Math.min(100, Math.max(0, s.progress ?? 0)) / 100;
  }
  const percent = Math.floor((done / steps.length) * 100);
  return steps.every(settledOk) ? 100 : Math.min(99, percent);
}

/**
 * What one step's transition makes of its job (written in the same batch as the step); `steps` are
 * the job's steps as wholes (workflow.ts's stepViews), not its runs.
 */
export interface JobChange {
  status: JobStatus;
  progress: number;
  /** Set when the job completed: the last step's result. */
  result?: unknown;
  /** Set when the job failed or was cancelled: why. */
  error?: string | null;
  errorCode?: string | null;
}

export function jobChangeOf(
  steps: readonly JobStep[],
  step: { status: TaskStatus; result?: unknown; error?: string | null; errorCode?: string | null },
): JobChange {
  const status = jobStatusOf(steps);
  const change: JobChange = { status, progress: jobProgressOf(steps) };
  // The last step that ran gives the result (a for_each step's is its items' results).
  if (status === "completed") change.result = [...steps].reverse().find((s) => s.status === "completed")?.result ?? step.result ?? null;
  if (status === "failed" || status === "cancelled") {
    // Why: the step that just changed, or else the step that failed in its wake (its condition could not be evaluated).
    const cause = step.error ? step : (steps.find((s) => s.status === "failed" && !tolerated(s) && s.error) ?? step);
    change.error = cause.error ?? (status === "cancelled" ? "cancelled" : "a step failed");
    change.errorCode = cause.errorCode ?? status;
  }
  return change;
}
