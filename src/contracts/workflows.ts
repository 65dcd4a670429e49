import { z } from "@hono/zod-openapi";
import { conditionError, MAX_CONDITION_LENGTH } from "../core/conditions";
import { MAX_FOR_EACH_ITEMS, MAX_ITERATIONS, MAX_PARALLELISM, type StepRules, WORKFLOW_STATUSES } from "../core/workflow";
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
  on_failure: z
    .string()
    .regex(/^(fail|continue|goto \d{1,4})$/, "fail, continue or goto <step index>")
    .default("fail")
    .openapi({
      description:
        "fail: the run fails with this step; continue: the run goes on to the next step; goto <n>: the run goes on at step n " +
        "(a later step skips those between; this step or an earlier one runs them again, at most max_iterations times)",
      example: "goto 0",
    }),
  repeat_until: z.string().trim().min(1).max(MAX_CONDITION_LENGTH).optional().openapi({
    description: "CEL over the earlier steps and this one: while false after a run completes, the step runs again (needs max_iterations)",
    example: "steps[1].result.tests_passed == true",
  }),
  max_iterations: z
    .number()
    .int()
    .min(1)
    .max(MAX_ITERATIONS)
    .optional()
    .openapi({
      description: `The most runs a repeat_until or a goto back makes (1–${MAX_ITERATIONS}); then the step fails (error_code max_iterations)`,
    }),
  for_each: z
    .string()
    .trim()
    .min(1)
    .max(MAX_CONDITION_LENGTH)
    .optional()
    .openapi({
      description: `CEL giving a list from earlier steps' results (at most ${MAX_FOR_EACH_ITEMS} items): the step runs once per item, with item and item_index in its payload; its result is the list of their results`,
      example: "steps[0].result.files",
    }),
  parallelism: z.number().int().min(1).max(MAX_PARALLELISM).optional().openapi({
    description: "for_each: how many items run at once (default 1: one after another)",
  }),
});

type WorkflowStepInput = z.infer<typeof WorkflowStep>;

/** The rules a step's task stores (null: a plain step). */
export function stepRulesOf(step: WorkflowStepInput): StepRules | null {
  const goto = /^goto (\d+)$/.exec(step.on_failure);
  const rules: StepRules = {
    ...(step.when !== undefined ? { when: step.when } : {}),
    ...(step.on_failure === "continue" ? { onFailure: "continue" } : {}),
    ...(goto ? { onFailure: "goto", gotoStep: Number(goto[1]) } : {}),
    ...(step.repeat_until !== undefined ? { repeatUntil: step.repeat_until } : {}),
    ...(step.max_iterations !== undefined ? { maxIterations: step.max_iterations } : {}),
    ...(step.for_each !== undefined ? { forEach: step.for_each } : {}),
    ...(step.parallelism !== undefined ? { parallelism: step.parallelism } : {}),
  };
  return Object.keys(rules).length ? rules : null;
}

/** Runs one execution of a workflow may make at most, counting every loop and item (a definition that could make more is refused). */
export const MAX_RUNS_PER_EXECUTION = 10_000;

/**
 * Why step `index` of `steps` is not a valid definition, as (field, message)
 * pairs: conditions must check, loops must be bounded, references must exist.
 */
function stepIssues(steps: WorkflowStepInput[], index: number): [string, string][] {
  const step = steps[index]!;
  const rules = stepRulesOf(step);
  const issues: [string, string][] = [];
  if (step.when !== undefined) {
    const error = index === 0 ? "the first step always runs (it has no earlier steps to read)" : conditionError(step.when, index);
    if (error) issues.push(["when", error]);
  }
  const loopsBack = rules?.onFailure === "goto" && (rules.gotoStep ?? 0) <= index;
  if (rules?.gotoStep !== undefined && rules.gotoStep >= steps.length) {
    issues.push(["on_failure", `there is no step ${rules.gotoStep} (steps are 0…${steps.length - 1})`]);
  } else if (loopsBack && step.max_iterations === undefined) {
    issues.push(["max_iterations", `goto ${rules?.gotoStep} runs steps again: give max_iterations to bound the loop`]);
  }
  if (step.repeat_until !== undefined) {
    const error = conditionError(step.repeat_until, index, true);
    if (error) issues.push(["repeat_until", error]);
    if (step.max_iterations === undefined) issues.push(["max_iterations", "repeat_until needs max_iterations to bound the loop"]);
    if (step.for_each !== undefined) issues.push(["repeat_until", "a step loops one way: for_each or repeat_until, not both"]);
  }
  if (step.max_iterations !== undefined && step.repeat_until === undefined && !loopsBack) {
    issues.push(["max_iterations", "max_iterations bounds a repeat_until or a goto back; this step has neither"]);
  }
  if (step.for_each !== undefined) {
    const error = index === 0 ? "the first step has no earlier results to iterate over" : conditionError(step.for_each, index);
    if (error) issues.push(["for_each", error]);
    const payload = step.payload;
    if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
      issues.push(["payload", "a for_each step's payload must be an object (each run gets item and item_index in it)"]);
    } else if ("item" in payload || "item_index" in payload) {
      issues.push(["payload", "a for_each step's payload cannot have item or item_index: each run's are set there"]);
    }
  }
  if (step.parallelism !== undefined && step.for_each === undefined) issues.push(["parallelism", "parallelism is for a for_each step"]);
  return issues;
}

/** The most runs the steps could make: each pass's runs, once more for every jump back any goto may take. */
export function worstCaseRuns(steps: WorkflowStepInput[]): number {
  let perPass = 0;
  let jumpsBack = 0;
  steps.forEach((step, index) => {
    const rules = stepRulesOf(step);
    perPass += (step.for_each ? MAX_FOR_EACH_ITEMS : 1) * (step.repeat_until ? (step.max_iterations ?? 1) : 1);
    if (rules?.onFailure === "goto" && (rules.gotoStep ?? 0) <= index) jumpsBack += (step.max_iterations ?? 1) - 1;
  });
  return perPass * (1 + jumpsBack);
}

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
    if (!b.steps) return;
    const steps = b.steps;
    steps.forEach((_, index) => {
      for (const [field, message] of stepIssues(steps, index)) ctx.addIssue({ code: "custom", path: ["steps", index, field], message });
    });
    const runs = worstCaseRuns(steps);
    if (runs > MAX_RUNS_PER_EXECUTION) {
      ctx.addIssue({
        code: "custom",
        path: ["steps"],
        message: `these loops could make ${runs} runs in one execution; at most ${MAX_RUNS_PER_EXECUTION} (lower max_iterations or the loops)`,
      });
    }
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
