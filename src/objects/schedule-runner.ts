/**
 * One Durable Object per schedule: holds its alarm, armed for the next due
 * time, and the newest due time it has handled (`cursor`, in its storage).
 *
 * The schedule's row in D1 is the definition; this object reads it when it
 * wakes. A wake-up takes the due times in (cursor, now], lets `catch_up`
 * choose which still run, runs them oldest first and only then moves the
 * cursor: a crash in between runs them again, and each run's job is keyed by
 * its due time (services/schedules.ts), so a due time makes one job. A run
 * that fails (D1 away) keeps the cursor before it and retries shortly.
 */
import { DurableObject } from "cloudflare:workers";
import { dueTimesBetween, nextDueAfter, runsToFire } from "../core/recurrence";
import { getSchedule, recordScheduleSkips, setNextRunAt } from "../db/schedules";
import type { ScheduleRow } from "../db/schema";
import { AppError, asRpcResult, type RpcResult } from "../errors";
import { type Ctx, createCtx } from "../services/context";
import { countMetric } from "../services/metrics";
import { type RunOutcome, recurrenceOf, runSchedule, startNextWaitingRun } from "../services/schedules";
import { resolveObjectName } from "./identity";
import { runSerialized, SerialQueue } from "./serial";

const CURSOR_KEY = "cursor";
/** After a failed run, the next attempt. */
const RETRY_AFTER_MS = 5_000;

export class ScheduleRunner extends DurableObject<Env> {
  private scheduleId: string | null = null;
  private readonly serial = new SerialQueue();

  constructor(state: DurableObjectState, env: Env) {
    super(state, env);
    state.blockConcurrencyWhile(async () => {
      this.scheduleId = await resolveObjectName(state, env.SCHEDULE_RUNNER);
    });
  }

  /** Every RPC and the alarm, one at a time, with a context that logs the schedule's id and reads the clock given. */
  private serialized<T>(nowMs: number | null, work: (ctx: Ctx, id: string) => Promise<T>): Promise<T> {
    const owner = { name: this.scheduleId, idField: "schedule_id", component: "schedule", kind: "schedule runner" };
    return runSerialized(this.serial, this.env, owner, work, nowMs);
  }

  // ---------------------------------------------------------------- RPC

  /**
   * After a create, resume, pause or edit: arms the alarm for the next due
   * time (or clears it when paused or gone). `fromNow`: due times before now
   * never run (a new or resumed schedule); else the stored cursor is kept.
   */
  arm(fromNow: boolean): Promise<{ nextDueMs: number | null }> {
    return this.serialized(null, async (ctx, id) => {
      const row = await getSchedule(ctx.db, id);
      if (row?.status !== "active") {
        await this.ctx.storage.deleteAlarm();
        return { nextDueMs: null };
      }
      const stored = await this.ctx.storage.get<number>(CURSOR_KEY);
      const cursor = fromNow || stored === undefined ? ctx.now() : stored;
      await this.ctx.storage.put(CURSOR_KEY, cursor);
      return { nextDueMs: await this.armAfter(ctx, row, cursor) };
    });
  }

  /** The schedule was deleted: forget everything. */
  forget(): Promise<void> {
    return this.serialized(null, async () => {
      await this.ctx.storage.deleteAlarm();
      await this.ctx.storage.delete(CURSOR_KEY);
    });
  }

  /** `POST /schedules/{id}/trigger`: one run now, under the schedule's overlap policy. */
  trigger(idempotencyKey?: string): Promise<RpcResult<RunOutcome>> {
    return this.serialized(null, (ctx, id) =>
      asRpcResult(async () => {
        const row = await getSchedule(ctx.db, id);
        if (!row) throw new AppError("schedule_not_found", `schedule ${id} does not exist`, { id });
        return runSchedule(ctx, row, null, idempotencyKey);
      }),
    );
  }

  /**
   * One of the schedule's runs finished: a queued one may start. Not queued
   * behind the other work: a run this object cancels (`cancel_previous`) ends
   * while that work waits, and tells us so. Starting a job is conditional in
   * D1, so two of these at once start it once.
   */
  async runEnded(): Promise<string | null> {
    if (!this.scheduleId) return null;
    const ctx = createCtx(this.env, { schedule_id: this.scheduleId, component: "schedule", request_id: crypto.randomUUID() });
    return startNextWaitingRun(ctx, this.scheduleId);
  }

  async alarm(): Promise<void> {
    await this.runDue(Date.now());
  }

  /** Runs what is due at `nowMs` (the alarm passes the real clock; tests pass their own). */
  runDue(nowMs: number): Promise<{ fired: number; missed: number }> {
    return this.serialized(nowMs, async (ctx, id) => {
      const row = await getSchedule(ctx.db, id);
      if (row?.status !== "active") {
        await this.ctx.storage.deleteAlarm();
        return { fired: 0, missed: 0 };
      }
      const recurrence = recurrenceOf(row);
      let cursor = (await this.ctx.storage.get<number>(CURSOR_KEY)) ?? nowMs;
      const { due, dropped } = dueTimesBetween(recurrence, cursor, nowMs);
      const plan = runsToFire(due, nowMs, row.catchUp);
      const missed = plan.missed.length + dropped;
      if (missed > 0) {
        await recordScheduleSkips(ctx.db, id, missed, `missed: ${missed} due time(s) passed while nothing ran`, nowMs);
        countMetric("clawbot_schedule_runs_total", { outcome: "missed" }, missed);
        ctx.log.warn("schedule due times missed", { missed, catch_up: row.catchUp, newest_due_at: due[due.length - 1] });
      }
      let fired = 0;
      for (const dueMs of plan.fire) {
        try {
          await runSchedule(ctx, row, dueMs);
          fired++;
        } catch (err) {
          // Not past this due time: the retry runs it (and any after it) again, once each.
          ctx.log.error("schedule run failed; retrying", { due_at: dueMs, error: String(err), retry_in_ms: RETRY_AFTER_MS });
          await this.ctx.storage.put(CURSOR_KEY, dueMs - 1);
          await this.ctx.storage.setAlarm(Date.now() + RETRY_AFTER_MS);
          return { fired, missed };
        }
      }
      cursor = Math.max(cursor, due[due.length - 1] ?? cursor);
      await this.ctx.storage.put(CURSOR_KEY, cursor);
      await this.armAfter(ctx, row, cursor);
      return { fired, missed };
    });
  }

  /** Arms the alarm for the first due time after `afterMs` and writes it on the row (the API shows it; the sweeper checks it). */
  private async armAfter(ctx: Ctx, row: ScheduleRow, afterMs: number): Promise<number | null> {
    const next = nextDueAfter(recurrenceOf(row), afterMs);
    if (next === null) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(next);
    if (next !== row.nextRunAt) await setNextRunAt(ctx.db, row.id, next);
    return next;
  }
}
