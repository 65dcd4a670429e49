import { z } from "@hono/zod-openapi";
import { conditionError, MAX_CONDITION_LENGTH } from "../core/conditions";
import { ON_FAILURE, WORKFLOW_STATUSES } from "../core/workflow";
import { JsonObject, JsonValue, PageQuery } from "./common";
import { TaskSchema, TIMEOUT_SECONDS } from "./tasks";

/** Steps one workflow may have (each is a task row; all of them are written in one batch). */
export const MAX_WORKFLOW_STEPS = 1000;

const Timeout = z.number().int().min(TIMEOUT_SECONDS.min).max(TIMEOUT_SECONDS.max);
const CapabilityName = z.string().trim().min(1).max(64);

export const WorkflowStep = z.object({
  payload: JsonValue.default({}),
  capability: CapabilityName.nullish(),
  timeout_seconds: Timeout.optional(),
  when: z.string().trim().min(1).max(MAX_CONDITION_LENGTH).optional().openapi({
    description:
      "CEL over the earlier steps (steps[i].status, .result, .error, .error_code); false skips this step. Not on the first step.",
    example: "steps[0].status == 'completed' && steps[0].result.count > 3",
  }),
  on_failure: z.enum(ON_FAILURE).default("fail").openapi({
    description: "fail: the run fails with this step; continue: the run goes on to the next step",
  }),
});

export const WorkflowCreateBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    description: z.string().max(5000).nullish(),
    task_payloads: z
      .array(JsonValue)
      .max(MAX_WORKFLOW_STEPS)
      .optional()
      .openapi({ description: "One payload per sequential step (seed 001)" }),
    steps: z.array(WorkflowStep).max(MAX_WORKFLOW_STEPS).optional().openapi({ description: "Steps with their own capability/timeout" }),
    capability: CapabilityName.nullish().openapi({ description: "Default capability for every step" }),
    timeout_seconds: Timeout.default(TIMEOUT_SECONDS.default),
    priority: z.number().int().min(-1000).max(1000).default(0),
    max_attempts: z.number().int().min(1).max(20).default(3),
    metadata: JsonObject.default({}),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .refine((b) => (b.task_payloads?.length ?? 0) + (b.steps?.length ?? 0) > 0, {
    message: "give task_payloads[] or steps[] (at least one step)",
    path: ["task_payloads"],
  })
  .refine((b) => !(b.task_payloads?.length && b.steps?.length), {
    message: "give either task_payloads[] or steps[], not both",
    path: ["steps"],
  })
  .superRefine((b, ctx) => {
    b.steps?.forEach((step, index) => {
      if (step.when === undefined) return;
      const error = index === 0 ? "the first step always runs (it has no earlier steps to read)" : conditionError(step.when, index);
      if (error) ctx.addIssue({ code: "custom", path: ["steps", index, "when"], message: error });
    });
  })
  .openapi("WorkflowCreate");

export const WorkflowSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    description: z.string().nullable(),
    status: z.enum(WORKFLOW_STATUSES),
    metadata: JsonObject,
    task_ids: z.array(z.string()),
    created_at: z.string(),
    updated_at: z.string(),
    started_at: z.string().nullable(),
    finished_at: z.string().nullable(),
  })
  .openapi("Workflow");

export const WorkflowWithTasksSchema = z.object({ workflow: WorkflowSchema, tasks: z.array(TaskSchema) }).openapi("WorkflowWithTasks");

export const WorkflowListQuery = PageQuery.extend({ status: z.enum(WORKFLOW_STATUSES).optional() });
