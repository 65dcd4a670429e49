import { z } from "@hono/zod-openapi";
import { TASK_STATUSES } from "../core/task-machine";
import { IsoTime, JsonValue, PageQuery } from "./common";

export const TIMEOUT_SECONDS = { min: 1, max: 3600, default: 300 } as const;

export const TaskCreateBody = z
  .object({
    payload: JsonValue.default({}),
    capability: z.string().trim().min(1).max(64).nullish(),
    priority: z.number().int().min(-1000).max(1000).default(0).openapi({ description: "Higher runs first" }),
    timeout_seconds: z.number().int().min(TIMEOUT_SECONDS.min).max(TIMEOUT_SECONDS.max).default(TIMEOUT_SECONDS.default),
    max_attempts: z.number().int().min(1).max(20).default(3),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .openapi("TaskCreate");

/** Most tasks one `POST /tasks/batch` creates (all or nothing). */
export const MAX_BATCH_TASKS = 500;

export const TaskBatchBody = z
  .object({
    tasks: z.array(TaskCreateBody).min(1).max(MAX_BATCH_TASKS).openapi({
      description:
        "Each with the fields of POST /tasks; all are validated before any is stored (errors name the item: tasks.<index>.<field>)",
    }),
    idempotency_key: z.string().min(1).max(200).optional().openapi({
      description: "For the whole batch (each task may carry its own instead): the same batch again returns the same tasks",
    }),
  })
  .openapi("TaskBatchCreate");

export const TaskAssignBody = z.object({ bot_id: z.string().min(1).max(100) }).openapi("TaskAssign");
export const TaskCompleteBody = z.object({ result: JsonValue.optional() }).openapi("TaskComplete");
export const TaskFailBody = z
  .object({
    error: z.string().min(1).max(10_000),
    retry: z.boolean().default(true).openapi({ description: "false makes the failure final even with attempts left" }),
  })
  .openapi("TaskFail");
export const TaskCancelBody = z.object({ reason: z.string().max(1000).optional() }).openapi("TaskCancel");

export const TaskSchema = z
  .object({
    id: z.string(),
    status: z.enum(TASK_STATUSES),
    payload: JsonValue,
    result: JsonValue.nullable(),
    capability: z.string().nullable(),
    priority: z.number().int(),
    timeout_seconds: z.number().int(),
    max_attempts: z.number().int(),
    attempts: z.number().int(),
    bot_id: z.string().nullable(),
    workflow_id: z.string().nullable(),
    job_id: z.string().nullable(),
    step_index: z.number().int().nullable(),
    error: z.string().nullable(),
    error_code: z.string().nullable(),
    progress: z.number().int().nullable(),
    progress_message: z.string().nullable(),
    waiting_for: z.string().nullable().openapi({ description: 'Why a pending task is not running, e.g. "capability:python"' }),
    when: z.string().nullable().openapi({ description: "A workflow step's condition (CEL), if it has one" }),
    on_failure: z
      .string()
      .nullable()
      .openapi({ description: "A workflow step's failure rule (fail, continue, goto <n>), if it has rules" }),
    repeat_until: z.string().nullable().openapi({ description: "A looping step's condition (CEL), if it has one" }),
    max_iterations: z.number().int().nullable(),
    for_each: z.string().nullable().openapi({ description: "A fanned-out step's list (CEL), if it has one" }),
    parallelism: z.number().int().nullable(),
    iteration: z.number().int().openapi({ description: "Which run of its step this task is (0: the first; loops add runs)" }),
    item_index: z.number().int().nullable().openapi({ description: "The for_each item this task runs" }),
    run_after: IsoTime,
    idempotency_key: z.string().nullable(),
    created_at: z.string(),
    updated_at: z.string(),
    assigned_at: IsoTime,
    started_at: IsoTime,
    completed_at: IsoTime,
    failed_at: IsoTime,
    cancelled_at: IsoTime,
  })
  .openapi("Task");

export const TaskListQuery = PageQuery.extend({
  status: z.enum(TASK_STATUSES).optional(),
  bot_id: z.string().max(100).optional(),
  workflow_id: z.string().max(100).optional(),
});

export const TaskEventSchema = z
  .object({ id: z.number().int(), type: z.string(), data: z.record(z.string(), z.unknown()), created_at: z.string() })
  .openapi("TaskEvent");
