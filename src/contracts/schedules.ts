import { z } from "@hono/zod-openapi";
import { CATCH_UP_POLICIES, OVERLAP_POLICIES, recurrenceError } from "../core/recurrence";
import { IsoTime, JsonObject, PageQuery } from "./common";
import { TaskCreateBody } from "./tasks";

/** Shortest interval: a run per second is a job (and its stream) per second. */
export const EVERY_SECONDS = { min: 1, max: 366 * 24 * 3600 } as const;

const ScheduleTask = TaskCreateBody.omit({ idempotency_key: true }).openapi("ScheduleTask");

export const ScheduleCreateBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    cron: z.string().trim().min(1).max(200).optional().openapi({
      description: "Standard 5-field cron (minute hour day-of-month month day-of-week) or @hourly/@daily/…",
      example: "*/15 9-17 * * 1-5",
    }),
    timezone: z.string().trim().min(1).max(64).default("UTC").openapi({ description: "IANA timezone the cron pattern is read in" }),
    every_seconds: z.number().int().min(EVERY_SECONDS.min).max(EVERY_SECONDS.max).optional().openapi({
      description: "Instead of cron: a run every N seconds, counted from the schedule's creation",
    }),
    task: ScheduleTask.optional().openapi({ description: "What each run does: the fields of POST /tasks" }),
    workflow_id: z.string().min(1).max(100).optional().openapi({ description: "Or: each run executes this workflow" }),
    overlap: z.enum(OVERLAP_POLICIES).default("skip").openapi({
      description: "When the previous run has not finished: skip this one, queue it behind, or cancel the previous and run",
    }),
    catch_up: z.enum(CATCH_UP_POLICIES).default("none").openapi({
      description: "Runs missed while nothing ran (an outage): none, the last one, or all (at most 100 per wake-up)",
    }),
    metadata: JsonObject.default({}),
    paused: z.boolean().default(false).openapi({ description: "Create it paused (resume it with /resume)" }),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .superRefine((b, ctx) => {
    if ((b.cron === undefined) === (b.every_seconds === undefined)) {
      ctx.addIssue({ code: "custom", path: ["cron"], message: "give exactly one of cron or every_seconds" });
    } else if (b.cron !== undefined) {
      const error = recurrenceError({ cron: b.cron, timezone: b.timezone });
      if (error) ctx.addIssue({ code: "custom", path: [error.includes("timezone") ? "timezone" : "cron"], message: error });
    }
    if ((b.task === undefined) === (b.workflow_id === undefined)) {
      ctx.addIssue({ code: "custom", path: ["task"], message: "give exactly one of task or workflow_id" });
    }
  })
  .openapi("ScheduleCreate");

export const ScheduleSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    status: z.enum(["active", "paused"]),
    cron: z.string().nullable(),
    timezone: z.string(),
    every_seconds: z.number().int().nullable(),
    task: ScheduleTask.nullable(),
    workflow_id: z.string().nullable(),
    overlap: z.enum(OVERLAP_POLICIES),
    catch_up: z.enum(CATCH_UP_POLICIES),
    metadata: JsonObject,
    next_run_at: IsoTime.openapi({ description: "The next due time (null while paused)" }),
    run_count: z.number().int(),
    skipped_count: z.number().int().openapi({ description: "Due times that did not run (overlap skip, missed, a deleted workflow)" }),
    last_run_at: IsoTime,
    last_job_id: z.string().nullable(),
    last_skip: z.string().nullable().openapi({ description: "Why the last due time did not run; cleared by the next run" }),
    runs_url: z.string().openapi({ description: "The schedule's runs: GET /jobs?schedule_id=" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Schedule");

export const ScheduleListQuery = PageQuery.extend({ status: z.enum(["active", "paused"]).optional() });
