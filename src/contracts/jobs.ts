import { z } from "@hono/zod-openapi";
import { JOB_STATUSES } from "../core/job";
import { IsoTime, JsonObject, JsonValue, PageQuery } from "./common";
import { TaskCreateBody } from "./tasks";

const JobTask = TaskCreateBody.omit({ idempotency_key: true }).openapi("JobTask");

const Execute = z.boolean().default(true).openapi({ description: "false: create the job queued but not started (start it with /execute)" });
const Key = z.string().min(1).max(200).optional();
const InputArtifactIds = z
  .array(z.string().min(1).max(100))
  .max(20)
  .default([])
  .openapi({ description: "Stored artifacts every step gets (the bot receives short-lived download URLs with each task)" });

export const JobCreateBody = z
  .object({
    task: JobTask.optional().openapi({ description: "A single-task job: the fields of POST /tasks" }),
    workflow_id: z
      .string()
      .min(1)
      .max(100)
      .optional()
      .openapi({ description: "An execution of this workflow (fresh tasks from its steps)" }),
    metadata: JsonObject.default({}),
    execute: Execute,
    input_artifact_ids: InputArtifactIds,
    idempotency_key: Key,
  })
  .refine((b) => (b.task === undefined) !== (b.workflow_id === undefined), {
    message: "give exactly one of task or workflow_id",
    path: ["task"],
  })
  .openapi("JobCreate");

export const WorkflowExecuteBody = z
  .object({ metadata: JsonObject.default({}), execute: Execute, input_artifact_ids: InputArtifactIds, idempotency_key: Key })
  .openapi("WorkflowExecute");

/** Seed 003 names one input in the query: `POST /workflows/{id}/execute?input_data_id=`. */
export const WorkflowExecuteQuery = z.object({ input_data_id: z.string().min(1).max(100).optional() });

const ResultArtifact = z.object({
  id: z.string(),
  name: z.string(),
  content_type: z.string(),
  kind: z.string(),
  size: z.number().int().nullable(),
  sha256: z.string().nullable(),
  task_id: z.string().nullable(),
  download_url: z.string(),
});

export const JobSchema = z
  .object({
    id: z.string(),
    kind: z.enum(["task", "workflow"]),
    workflow_id: z.string().nullable(),
    project_id: z.string().nullable(),
    status: z.enum(JOB_STATUSES),
    progress: z.number().int().min(0).max(100),
    step_count: z.number().int(),
    result: JsonValue.nullable(),
    error: z.string().nullable(),
    error_code: z.string().nullable(),
    metadata: JsonObject,
    input_artifact_ids: z.array(z.string()),
    schedule_id: z.string().nullable().openapi({ description: "Set for a schedule's run" }),
    scheduled_for: IsoTime.openapi({ description: "The due time a schedule's run ran for (null when triggered by hand)" }),
    status_url: z.string(),
    websocket_url: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
    queued_at: IsoTime,
    started_at: IsoTime,
    finished_at: IsoTime,
  })
  .openapi("Job");

export const JobResultSchema = z
  .object({
    job_id: z.string(),
    status: z.enum(JOB_STATUSES),
    result: JsonValue.nullable(),
    error: z.string().nullable(),
    error_code: z.string().nullable(),
    finished_at: IsoTime,
    result_artifacts: z.array(ResultArtifact).openapi({ description: "The artifacts the result names in `result_artifact_ids`" }),
    result_data_id: z.string().nullable().openapi({ description: "Seed 003: the first of them" }),
    artifacts: z
      .array(ResultArtifact)
      .openapi({ description: "Every stored artifact of the job (its steps' uploads), oldest first, at most 200" }),
    steps: z.array(
      z.object({
        step_index: z.number().int(),
        iteration: z.number().int().openapi({ description: "Which run of the step (loops add runs)" }),
        item_index: z.number().int().nullable().openapi({ description: "A for_each step's item" }),
        task_id: z.string(),
        status: z.string(),
        result: JsonValue.nullable(),
        error: z.string().nullable(),
      }),
    ),
  })
  .openapi("JobResult");

const IsoQueryTime = z.iso.datetime({ offset: true }).optional();

export const JobListQuery = PageQuery.extend({
  status: z.enum(JOB_STATUSES).optional(),
  workflow_id: z.string().max(100).optional(),
  schedule_id: z.string().max(100).optional().openapi({ description: "A schedule's runs" }),
  created_after: IsoQueryTime.openapi({ description: "ISO-8601; jobs created at or after" }),
  created_before: IsoQueryTime.openapi({ description: "ISO-8601; jobs created before" }),
});

export const JobCancelBody = z.object({ reason: z.string().max(1000).optional() }).openapi("JobCancel");
