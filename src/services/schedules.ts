/**
 * Scheduled tasks: each due time of a schedule runs a job (its own stream,
 * its steps ordinary tasks). The schedule's ScheduleRunner object decides
 * when (objects/schedule-runner.ts); this decides what a run does: the
 * overlap policy against the runs still going, then one idempotent create
 * keyed by the due time, so a due time makes one job even if the object
 * crashes between making it and remembering it did.
 */

import type { z } from "@hono/zod-openapi";
import type { ScheduleCreateBody } from "../contracts/schedules";
import { type OverlapDecision, overlapDecision, type Recurrence } from "../core/recurrence";
import { timeOrderedId } from "../crypto/ids";
import {
  activeRunsOf,
  deleteSchedule,
  getSchedule,
  getScheduleByIdempotencyKey,
  insertSchedule,
  recordScheduleRun,
  recordScheduleSkips,
  setScheduleStatus,
  waitingRunCount,
} from "../db/schedules";
import type { JobRow, ScheduleRow } from "../db/schema";
import { listSequenceTasks } from "../db/tasks";
import { getWorkflow } from "../db/workflows";
import { AppError, loadOr404 } from "../errors";
import { scheduleRunner } from "../objects/stubs";
import type { Ctx } from "./context";
import { createOnce, keyedRow, withoutKey } from "./create-once";
import { cancelJob, createJob, executeQueuedJob, type JobSpec, stepOfTask, stepsOf } from "./jobs";
import { countMetric } from "./metrics";

/** Runs a schedule keeps waiting behind a running one (`overlap: queue`); a due time past that is skipped. */
export const MAX_WAITING_RUNS = 100;

export const loadSchedule = (ctx: Ctx, id: string) => loadOr404("schedule", id, getSchedule(ctx.db, id));

export const recurrenceOf = (s: Pick<ScheduleRow, "cron" | "timezone" | "everySeconds" | "anchorAt">): Recurrence =>
  s.cron !== null ? { cron: s.cron, timezone: s.timezone } : { everySeconds: s.everySeconds ?? 60, anchorMs: s.anchorAt };

type CreateBody = z.infer<typeof ScheduleCreateBody>;

/**
 * `POST /schedules` (idempotent). The row first, then its object arms the
 * alarm; a replay arms it again (harmless), so a create whose arming failed
 * is mended by retrying it.
 */
export async function createSchedule(ctx: Ctx, body: CreateBody, key: string | undefined) {
  if (body.workflow_id) await loadOr404("workflow", body.workflow_id, getWorkflow(ctx.db, body.workflow_id));
  const result = await createOnce(ctx, {
    kind: "schedule",
    key,
    request: withoutKey(body),
    find: async (k) => keyedRow(await getScheduleByIdempotencyKey(ctx.db, k)),
    insert: async (requestHash) => {
      const nowMs = ctx.now();
      const t = body.task;
      const row: ScheduleRow = {
        id: timeOrderedId(),
        name: body.name,
        status: body.paused ? "paused" : "active",
        cron: body.cron ?? null,
        timezone: body.timezone,
        everySeconds: body.every_seconds ?? null,
        anchorAt: nowMs,
        target: t ? { kind: "task", task: stepOfTask(t) } : { kind: "workflow", workflowId: body.workflow_id! },
        overlap: body.overlap,
        catchUp: body.catch_up,
        metadata: body.metadata,
        runCount: 0,
        skippedCount: 0,
        lastRunAt: null,
        nextRunAt: null,
        lastJobId: null,
        lastSkip: null,
        idempotencyKey: key ?? null,
        idempotencyHash: requestHash,
        createdAt: nowMs,
        updatedAt: nowMs,
      };
      await insertSchedule(ctx.db, row);
      ctx.log.info("schedule created", { schedule_id: row.id, cron: row.cron, timezone: row.timezone, every_seconds: row.everySeconds });
      return row;
    },
  });
  // The object writes the due time it armed for; the answer carries it without reading the row again.
  const { nextDueMs } = await scheduleRunner(ctx.env, result.resource.id).arm(result.created);
  const resource = result.resource.status === "active" ? { ...result.resource, nextRunAt: nextDueMs } : result.resource;
  return { resource, created: result.created };
}

/** Pause (the alarm is cleared) or resume (due times from now on; those missed while paused never run). */
export async function setPaused(ctx: Ctx, id: string, paused: boolean): Promise<ScheduleRow> {
  const before = await loadSchedule(ctx, id);
  const status = paused ? "paused" : "active";
  const changed = await setScheduleStatus(ctx.db, id, status, ctx.now());
  // Armed again even when unchanged: a resume repeated after a lost answer still leaves the alarm set.
  const { nextDueMs } = await scheduleRunner(ctx.env, id).arm(changed);
  if (changed) ctx.log.info(paused ? "schedule paused" : "schedule resumed", { schedule_id: id });
  return { ...before, status, nextRunAt: nextDueMs, updatedAt: changed ? ctx.now() : before.updatedAt };
}

/** `DELETE /schedules/{id}`: the row and the alarm go; runs that never started are cancelled, running ones finish. */
export async function removeSchedule(ctx: Ctx, id: string): Promise<void> {
  await loadSchedule(ctx, id);
  await deleteSchedule(ctx.db, id);
  await scheduleRunner(ctx.env, id).forget();
  const cancelled = await cancelWaitingRuns(ctx, id);
  ctx.log.info("schedule deleted", { schedule_id: id, waiting_runs_cancelled: cancelled });
}

/** A run that did not happen says why: a run still going (`overlap: skip`), or its workflow is gone. */
type SkipCode = "run_in_progress" | "workflow_not_found";
export type RunOutcome =
  | { job: JobRow; decision: OverlapDecision; created: boolean }
  | { job: null; decision: "skip"; code: SkipCode; reason: string };

/**
 * One run of `schedule`: for the due time `dueMs`, or by hand (`dueMs` null,
 * keyed by the caller's idempotency key if any). Skips are recorded on the
 * schedule and logged; they are not errors.
 */
export async function runSchedule(ctx: Ctx, schedule: ScheduleRow, dueMs: number | null, manualKey?: string): Promise<RunOutcome> {
  const active = await activeRunsOf(ctx.db, schedule.id);
  let decision = overlapDecision(schedule.overlap, active.length > 0);
  if (decision === "queue" && (await waitingRunCount(ctx.db, schedule.id)) >= MAX_WAITING_RUNS) decision = "skip";
  if (decision === "skip") {
    const reason = active.length > 0 ? `overlap: run ${active[0]!.id} has not finished` : "overlap";
    return skipRun(ctx, schedule, dueMs, "run_in_progress", reason);
  }
  const spec = await jobSpecOf(ctx, schedule, dueMs, decision !== "queue");
  if (!spec) {
    const reason = `workflow ${(schedule.target as { workflowId: string }).workflowId} no longer exists`;
    return skipRun(ctx, schedule, dueMs, "workflow_not_found", reason);
  }
  if (decision === "cancel_previous") {
    for (const run of active) {
      await cancelJob(ctx, run.id, `replaced by a newer run of schedule ${schedule.id}`).catch((err) => {
        // A run that finished meanwhile is what we wanted anyway.
        if (!(err instanceof AppError && err.code === "invalid_transition")) throw err;
      });
    }
  }
  const key = dueMs !== null ? `schedule:${schedule.id}:${dueMs}` : manualKey && `schedule:${schedule.id}:trigger:${manualKey}`;
  const { resource: job, created } = await createJob(
    ctx,
    spec,
    key,
    { schedule_id: schedule.id, due: dueMs },
    {
      extra: (jobId) => [recordScheduleRun(ctx.db, schedule.id, jobId, ctx.now())],
    },
  );
  if (created) {
    countMetric("clawbot_schedule_runs_total", { outcome: "run" });
    ctx.log.info("schedule run", {
      schedule_id: schedule.id,
      job_id: job.id,
      due_at: dueMs,
      decision,
      replaced: decision === "cancel_previous" ? active.length : 0,
    });
  }
  return { job, decision, created };
}

async function skipRun(ctx: Ctx, schedule: ScheduleRow, dueMs: number | null, code: SkipCode, reason: string): Promise<RunOutcome> {
  await recordScheduleSkips(ctx.db, schedule.id, 1, reason, ctx.now());
  countMetric("clawbot_schedule_runs_total", { outcome: "skipped" });
  ctx.log.info("schedule run skipped", { schedule_id: schedule.id, due_at: dueMs, reason });
  return { job: null, decision: "skip", code, reason };
}

/** The job a run creates; null when its workflow was deleted. */
async function jobSpecOf(ctx: Ctx, s: ScheduleRow, dueMs: number | null, execute: boolean): Promise<JobSpec | null> {
  const base = { metadata: s.metadata, execute, schedule: { id: s.id, dueMs } };
  if (s.target.kind === "task") return { ...base, kind: "task", workflowId: null, steps: [s.target.task] };
  const workflowId = s.target.workflowId;
  if (!(await getWorkflow(ctx.db, workflowId))) return null;
  const steps = stepsOf(await listSequenceTasks(ctx.db, { kind: "workflow", id: workflowId }, ctx.now()));
  return { ...base, kind: "workflow", workflowId, steps };
}

/** A run ended: with `overlap: queue`, the oldest waiting run starts (if nothing else runs). */
export async function startNextWaitingRun(ctx: Ctx, scheduleId: string): Promise<string | null> {
  const runs = await activeRunsOf(ctx.db, scheduleId);
  if (runs.some((r) => r.queuedAt !== null)) return null; // one still runs (or waits for a bot)
  const next = runs.find((r) => r.queuedAt === null);
  if (!next) return null;
  await executeQueuedJob(ctx, next.id).catch((err) => {
    if (!(err instanceof AppError && err.code === "invalid_transition")) throw err;
  });
  ctx.log.info("schedule run started from the queue", { schedule_id: scheduleId, job_id: next.id });
  return next.id;
}

/** A deleted schedule's runs that never started are cancelled (those running finish). */
export async function cancelWaitingRuns(ctx: Ctx, scheduleId: string): Promise<number> {
  let cancelled = 0;
  for (const run of await activeRunsOf(ctx.db, scheduleId, MAX_WAITING_RUNS)) {
    if (run.queuedAt !== null) continue;
    try {
      await cancelJob(ctx, run.id, `schedule ${scheduleId} was deleted`);
      cancelled++;
    } catch (err) {
      ctx.log.warn("could not cancel a deleted schedule's waiting run", { schedule_id: scheduleId, job_id: run.id, error: String(err) });
    }
  }
  return cancelled;
}
