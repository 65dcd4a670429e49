/**
 * What a job's watchers see (seed 003/004 event types), derived from each
 * step's transition after it was written: `task_started`, `step` (assigned,
 * completed, retry scheduled, failed, cancelled), `status` when the job's
 * status changes, `progress`, `log`, and `complete` (+ `error`) at the end.
 */
import { isFinalJobStatus, type JobChange, type JobStatus } from "../core/job";
import type { StepDecision } from "../core/step-plan";
import { type NewStreamEvent, streamName } from "../core/stream";
import type { TaskPatch, TransitionEvent } from "../core/task-machine";
import { getJob } from "../db/jobs";
import { getProject } from "../db/projects";
import type { JobRow, ProjectRow, TaskRow } from "../db/schema";
import { scheduleRunner } from "../objects/stubs";
import { iso } from "../presenters";
import type { Ctx } from "./context";
import { publish, publishFleet } from "./streams";

/** The job's summary a watcher gets first (and the fleet stream carries). */
export function jobSummary(j: Pick<JobRow, "id" | "status" | "progress" | "stepCount" | "error" | "workflowId" | "projectId">) {
  return {
    job_id: j.id,
    status: j.status,
    progress: j.progress,
    step_count: j.stepCount,
    error: j.error,
    workflow_id: j.workflowId,
    project_id: j.projectId,
  };
}

/** A project's summary on its stream. */
export const projectSummary = (p: Pick<ProjectRow, "id" | "status" | "initJobId" | "error">) => ({
  project_id: p.id,
  status: p.status,
  init_job_id: p.initJobId,
  error: p.error,
});

export interface JobTransition {
  jobId: string;
  /** The step as it was before the transition. */
  task: TaskRow;
  patch: TaskPatch;
  events: TransitionEvent[];
  jobBefore: JobStatus;
  jobChange: JobChange | null;
  stepCount: number;
  /** What the step rules decided after this step (a condition's step run or skipped, a failure tolerated). */
  decisions: StepDecision[];
}

const stepOf = (task: TaskRow, botId: string | null) => ({
  task_id: task.id,
  step_index: task.stepIndex,
  // A looping step's run and a for_each's item say which they are.
  ...(task.iteration > 0 ? { iteration: task.iteration } : {}),
  ...(task.itemIndex !== null ? { item_index: task.itemIndex } : {}),
  attempt: task.attempts,
  bot_id: botId,
});

export async function publishJobTransition(ctx: Ctx, t: JobTransition): Promise<void> {
  const { task, patch } = t;
  const step = stepOf(task, task.botId ?? task.previousBotId);
  const out: NewStreamEvent[] = [];
  if (t.events.includes("task_started")) out.push({ type: "task_started", data: step });
  if (patch.status === "completed") out.push({ type: "step", data: { ...step, status: "completed", result: patch.result ?? null } });
  else if (t.events.includes("task_retry_scheduled")) {
    out.push({
      type: "step",
      data: { ...step, status: "retry_scheduled", error_code: patch.errorCode, error: patch.error, run_after: iso(patch.runAfterMs) },
    });
  } else if (patch.status === "failed" || patch.status === "cancelled") {
    out.push({ type: "step", data: { ...step, status: patch.status, error_code: patch.errorCode, error: patch.error } });
  } else if (t.events.includes("task_unassigned")) out.push({ type: "step", data: { ...step, status: "pending", bot_id: null } });

  for (const d of t.decisions) out.push({ type: "decision", data: { ...d } });
  const change = t.jobChange;
  let state: Record<string, unknown> | undefined;
  if (change) {
    state = { job_id: t.jobId, status: change.status, progress: change.progress, step_count: t.stepCount, error: change.error ?? null };
    if (change.status !== t.jobBefore) out.push({ type: "status", data: state });
    if (isFinalJobStatus(change.status)) {
      if (change.status === "failed")
        out.push({ type: "error", data: { code: change.errorCode ?? "failed", message: change.error ?? "" } });
      out.push({ type: "complete", data: { ...state, result: change.result ?? null } });
    }
  }
  await publish(ctx, streamName("job", t.jobId), out, state);
  if (change && change.status !== t.jobBefore) await publishFleet(ctx, { type: "job", data: state! });
  if (change && isFinalJobStatus(change.status)) await announceJobOutcome(ctx, t.jobId);
}

/**
 * A job ended. If it initialized a project (and is still that project's
 * latest run), the project's watchers hear the outcome; if it was a
 * schedule's run, the schedule's object hears it (a queued run may start).
 */
async function announceJobOutcome(ctx: Ctx, jobId: string): Promise<void> {
  const job = await getJob(ctx.db, jobId);
  if (job?.scheduleId) {
    await scheduleRunner(ctx.env, job.scheduleId)
      .runEnded()
      .catch((err) =>
        ctx.log.error("could not tell the schedule its run ended", { job_id: jobId, schedule_id: job.scheduleId, error: String(err) }),
      );
  }
  if (!job?.projectId) return;
  const project = await getProject(ctx.db, job.projectId);
  if (!project || project.initJobId !== jobId) return;
  await announceProject(ctx, project, { final: true });
}

/** A project's status, to its own stream (with `complete` once its initialization ended) and to the fleet. */
export async function announceProject(ctx: Ctx, p: Pick<ProjectRow, "id" | "status" | "initJobId" | "error">, o = { final: false }) {
  const summary = projectSummary(p);
  const events: NewStreamEvent[] = [{ type: "status", data: summary }];
  if (o.final) events.push({ type: "complete", data: summary });
  await publish(ctx, streamName("project", p.id), events, summary);
  await publishFleet(ctx, { type: "project", data: summary });
}

/** A step was handed to a bot (its object delivers it). */
export const publishStepAssigned = (ctx: Ctx, task: TaskRow) =>
  publish(ctx, streamName("job", task.jobId!), [{ type: "step", data: { ...stepOf(task, task.botId), status: "assigned" } }]);

/** A bot's `task_progress` for a job's step: every message reaches the watchers (D1 is written at most once a second). */
export const publishStepProgress = (
  ctx: Ctx,
  task: Pick<TaskRow, "id" | "jobId" | "stepIndex">,
  progress: number,
  message: string | null,
) =>
  publish(ctx, streamName("job", task.jobId!), [
    { type: "progress", data: { task_id: task.id, step_index: task.stepIndex, progress, message } },
  ]);

/** Output lines a bot streams while it runs a job's step (`task_log`). */
export const publishStepLog = (ctx: Ctx, task: Pick<TaskRow, "id" | "jobId" | "stepIndex">, stream: string, lines: string[]) =>
  publish(ctx, streamName("job", task.jobId!), [{ type: "log", data: { task_id: task.id, step_index: task.stepIndex, stream, lines } }]);
