/**
 * Jobs (seed 003): create (a single task, or an execution of a workflow with
 * fresh tasks copied from its steps), execute, cancel. A job's steps are
 * ordinary tasks (dispatch, timeouts, retries and delivery are theirs); the
 * job row follows them in the same guarded batches (task-writes.ts), and its
 * watchers hear every step (job-events.ts).
 */
import { isFinalJobStatus } from "../core/job";
import { streamName } from "../core/stream";
import { isHeld } from "../core/task-machine";
import type { StepRules } from "../core/workflow";
import { timeOrderedId } from "../crypto/ids";
import type { Statement } from "../db/batch";
import { executeJob, getJob, getJobByIdempotencyKey, insertJob } from "../db/jobs";
import type { InputArtifact, JobRow, TaskRow } from "../db/schema";
import { newTaskRow } from "../db/task-inserts";
import { listSequenceTasks } from "../db/tasks";
import { AppError, loadOr404 } from "../errors";
import type { Ctx } from "./context";
import { createOnce, keyedRow } from "./create-once";
import { dispatchTask, settleOutcome } from "./dispatch";
import { jobSummary } from "./job-events";
import { applyTaskAction } from "./lifecycle";
import { countCreated } from "./metrics";
import { publish, publishFleet } from "./streams";

export interface StepSpec {
  payload: unknown;
  capability: string | null;
  timeoutSeconds: number;
  priority: number;
  maxAttempts: number;
  /** A workflow step's `when` / `on_failure`. */
  rules?: StepRules | null;
}

export interface JobSpec {
  kind: "task" | "workflow";
  workflowId: string | null;
  projectId?: string | null;
  steps: StepSpec[];
  metadata: Record<string, unknown>;
  /** Start at once (else `POST /jobs/{id}/execute` does). */
  execute: boolean;
  /** Files every step gets (ready artifacts, checked by the caller). */
  inputArtifacts?: InputArtifact[];
  /** A schedule's run: the schedule, and the due time it runs for (null when triggered by hand). */
  schedule?: { id: string; dueMs: number | null };
}

type InsertHooks = { extra?: (jobId: string) => Statement[]; afterInsert?: () => Promise<void> };

export const loadJob = (ctx: Ctx, id: string) => loadOr404("job", id, getJob(ctx.db, id));

/** The one step of a single-task job (or a schedule's run), from the fields of `POST /tasks`. */
export function stepOfTask(t: {
  payload?: unknown;
  capability?: string | null;
  timeout_seconds: number;
  priority: number;
  max_attempts: number;
}): StepSpec {
  return {
    payload: t.payload ?? {},
    capability: t.capability ?? null,
    timeoutSeconds: t.timeout_seconds,
    priority: t.priority,
    maxAttempts: t.max_attempts,
  };
}

/**
 * The steps of a workflow, as a job copies them: from the tasks the workflow
 * was created with (a step's first run; the runs its own loops and items added
 * are not steps, and an item's payload goes back to the step's own).
 */
export function stepsOf(workflowTasks: TaskRow[]): StepSpec[] {
  return workflowTasks
    .filter((t) => t.iteration === 0 && (t.itemIndex === null || t.itemIndex === 0))
    .map((t) => ({
      payload: t.itemIndex === null ? t.payload : withoutItem(t.payload),
      capability: t.capability,
      timeoutSeconds: t.timeoutSeconds,
      priority: t.priority,
      maxAttempts: t.maxAttempts,
      rules: t.stepRules,
    }));
}

function withoutItem(payload: unknown): unknown {
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) return payload;
  const { item: _item, item_index: _index, ...rest } = payload as Record<string, unknown>;
  return rest;
}

/** An idempotent create: same key and request → the same job. */
export async function createJob(ctx: Ctx, spec: JobSpec, key: string | undefined, request: unknown, hooks: InsertHooks = {}) {
  return createOnce(ctx, {
    kind: "job",
    key,
    request,
    find: async (k) => keyedRow(await getJobByIdempotencyKey(ctx.db, k)),
    insert: (requestHash) => insertNewJob(ctx, spec, { key: key ?? null, hash: requestHash }, hooks),
  });
}

/**
 * Stores the job and its steps in one batch (with `extra` statements: a
 * project's row), tells its stream it is queued (then `afterInsert` runs), and
 * hands its first step to a bot if it executes now. Returns the job as stored.
 */
export async function insertNewJob(
  ctx: Ctx,
  spec: JobSpec,
  idempotency: { key: string | null; hash: string | null },
  hooks: InsertHooks = {},
): Promise<JobRow> {
  const nowMs = ctx.now();
  const id = timeOrderedId();
  const job: JobRow = {
    id,
    kind: spec.kind,
    workflowId: spec.workflowId,
    projectId: spec.projectId ?? null,
    status: "queued",
    progress: 0,
    stepCount: spec.steps.length,
    result: null,
    error: null,
    errorCode: null,
    metadata: spec.metadata,
    inputArtifactIds: (spec.inputArtifacts ?? []).map((a) => a.id),
    idempotencyKey: idempotency.key,
    idempotencyHash: idempotency.hash,
    createdAt: nowMs,
    updatedAt: nowMs,
    queuedAt: spec.execute ? nowMs : null,
    startedAt: null,
    finishedAt: null,
    scheduleId: spec.schedule?.id ?? null,
    scheduledFor: spec.schedule?.dueMs ?? null,
  };
  const steps = spec.steps.map((s, stepIndex) =>
    newTaskRow({
      id: timeOrderedId(),
      payload: s.payload ?? {},
      capability: s.capability,
      timeoutSeconds: s.timeoutSeconds,
      priority: s.priority,
      maxAttempts: s.maxAttempts,
      workflowId: spec.workflowId,
      jobId: id,
      stepIndex,
      stepRules: s.rules ?? null,
      inputArtifacts: spec.inputArtifacts?.length ? spec.inputArtifacts : null,
      ready: spec.execute && stepIndex === 0,
      createdAt: nowMs,
      updatedAt: nowMs,
    }),
  );
  await insertJob(ctx.db, job, steps, hooks.extra?.(id) ?? []);
  countCreated(steps);
  ctx.log.info("job created", { job_id: id, kind: spec.kind, workflow_id: spec.workflowId, steps: steps.length, execute: spec.execute });
  // Queued first in its log, then whatever the dispatch below makes happen.
  await publish(ctx, streamName("job", id), [{ type: "status", data: jobSummary(job) }], jobSummary(job));
  await publishFleet(ctx, { type: "job", data: jobSummary(job) });
  await hooks.afterInsert?.();
  if (spec.execute && steps[0]) await dispatchTask(ctx, steps[0].id);
  return job;
}

/** `POST /jobs/{id}/execute`: starts a job created with `execute: false`, once. */
export async function executeQueuedJob(ctx: Ctx, id: string): Promise<JobRow> {
  const job = await loadJob(ctx, id);
  if (!(await executeJob(ctx.db, id, ctx.now()))) {
    throw new AppError("invalid_transition", `job ${id} was already executed (it is ${job.status})`, { job_id: id, status: job.status });
  }
  ctx.log.info("job executed", { job_id: id });
  const first = (await listSequenceTasks(ctx.db, { kind: "job", id }, ctx.now()))[0];
  if (first) await dispatchTask(ctx, first.id);
  return loadJob(ctx, id);
}

/**
 * After a job is cancelled, the runs bots still hold (a for_each step's other
 * items) are cancelled too, each told to its bot; one that ends meanwhile is left be.
 */
async function cancelHeldRuns(ctx: Ctx, jobId: string, reason: string): Promise<void> {
  const held = (await listSequenceTasks(ctx.db, { kind: "job", id: jobId }, ctx.now())).filter((t) => isHeld(t.status));
  for (const t of held) {
    try {
      await settleOutcome(ctx, await applyTaskAction(ctx, t.id, { kind: "cancel", reason }));
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== "invalid_transition") throw err;
    }
  }
}

/** Attempts at cancelling while the job's steps move under us (a step completing releases the next one). */
const CANCEL_RACE_RETRIES = 4;

/**
 * `POST /jobs/{id}/cancel`: cancels the step that runs or waits (a running
 * one is told to its bot, whose handler is aborted), which cancels the steps
 * after it and ends the job `cancelled` in the same batch — at once, whether
 * or not the bot answers. A finished job is 409.
 */
export async function cancelJob(ctx: Ctx, id: string, reason: string): Promise<JobRow> {
  for (let attempt = 0; attempt < CANCEL_RACE_RETRIES; attempt++) {
    const job = await loadJob(ctx, id);
    if (isFinalJobStatus(job.status)) {
      throw new AppError("invalid_transition", `cannot cancel a job that is ${job.status}`, { job_id: id, status: job.status });
    }
    const steps = await listSequenceTasks(ctx.db, { kind: "job", id }, ctx.now());
    const current = steps.find((t) => t.status === "pending" || t.status === "assigned" || t.status === "in_progress");
    if (!current) continue; // its last step is finishing right now: read the job again
    try {
      const outcome = await applyTaskAction(ctx, current.id, { kind: "cancel", reason });
      await settleOutcome(ctx, outcome);
      await cancelHeldRuns(ctx, id, reason);
      ctx.log.info("job cancelled", { job_id: id, task_id: current.id, reason });
      return loadJob(ctx, id);
    } catch (err) {
      if (!(err instanceof AppError) || err.code !== "invalid_transition") throw err;
      // That step finished between our read and our write: look again.
    }
  }
  throw new AppError("conflict", `job ${id} kept changing while we cancelled it; try again`, { job_id: id });
}
