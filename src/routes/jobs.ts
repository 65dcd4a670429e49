/** /api/v1/jobs — executions of a workflow or of one task (seed 003), watched live on /ws/jobs/{id}. */
import { createRoute } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { errorResponses } from "../contracts/common";
import { JobCreateBody, JobListQuery, JobResultSchema, JobSchema } from "../contracts/jobs";
import { isFinalJobStatus } from "../core/job";
import { artifactsOfJob, readyArtifactsIn } from "../db/artifacts";
import { listJobs } from "../db/jobs";
import { decodeCursor } from "../db/pagination";
import { listSequenceTasks } from "../db/tasks";
import { getWorkflow } from "../db/workflows";
import { AppError, loadOr404 } from "../errors";
import { type AppContext, createRouter, idempotencyKey, jsonBody, jsonResponse } from "../http";
import { iso, jobJson, resultArtifactJson } from "../presenters";
import { inputArtifacts } from "../services/artifacts";
import { withoutKey } from "../services/create-once";
import { cancelJob, createJob, executeQueuedJob, type JobSpec, loadJob, stepOfTask, stepsOf } from "../services/jobs";
import { chargeTaskCreation } from "../services/rate-limits";
import { resourceRoutes } from "./resource-routes";
import { eventRoutes } from "./streams";

const tags = ["Jobs"];

/** The ids a job's result names in `result_artifact_ids` (strings only, at most 100). */
function resultArtifactIds(result: unknown): string[] {
  const ids = (result as { result_artifact_ids?: unknown } | null)?.result_artifact_ids;
  return Array.isArray(ids) ? ids.filter((x): x is string => typeof x === "string").slice(0, 100) : [];
}

export const jobsRouter = createRouter();

/**
 * Starts a job for the caller: its steps' task creation is charged to the caller's limits, the job is
 * created once per idempotency key, and the answer is 202 with the job, `status_url`, `websocket_url`
 * and `Location` (a replayed create: 200).
 */
export async function startJob(c: AppContext, spec: JobSpec, key: string | undefined, request: unknown) {
  const ctx = c.get("ctx");
  await chargeTaskCreation(
    ctx,
    c.get("principal"),
    spec.steps.map((s) => s.capability),
  );
  const { resource, created } = await createJob(ctx, spec, key, request);
  const body = jobJson(resource);
  c.header("Location", body.status_url);
  return c.json(body, created ? 202 : 200);
}

/** A workflow's steps as a job runs them (404 for an unknown workflow). */
export async function workflowSteps(c: AppContext, workflowId: string) {
  const ctx = c.get("ctx");
  await loadOr404("workflow", workflowId, getWorkflow(ctx.db, workflowId));
  return stepsOf(await listSequenceTasks(ctx.db, { kind: "workflow", id: workflowId }, ctx.now()));
}

jobsRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Create a job: one task, or an execution of a workflow (202: it runs in the background)",
    request: jsonBody(JobCreateBody),
    responses: {
      202: jsonResponse(JobSchema, "Accepted; follow status_url or watch websocket_url"),
      200: jsonResponse(JobSchema, "Replayed idempotent create"),
      ...errorResponses(400, 401, 403, 404, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const body = c.req.valid("json");
    const base = {
      metadata: body.metadata,
      execute: body.execute,
      inputArtifacts: await inputArtifacts(c.get("ctx"), body.input_artifact_ids),
    };
    let spec: JobSpec;
    if (body.workflow_id) {
      spec = { ...base, kind: "workflow", workflowId: body.workflow_id, steps: await workflowSteps(c, body.workflow_id) };
    } else {
      spec = { ...base, kind: "task", workflowId: null, steps: [stepOfTask(body.task!)] };
    }
    return startJob(c, spec, idempotencyKey(c, body.idempotency_key), withoutKey(body));
  },
);

const routes = resourceRoutes(jobsRouter, tags);

routes.list({
  path: "/",
  summary: "List jobs (filter by status, workflow, schedule, creation time; newest first)",
  query: JobListQuery,
  item: JobSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const page = await listJobs(ctx.db, {
      status: q.status,
      workflowId: q.workflow_id,
      scheduleId: q.schedule_id,
      createdAfterMs: q.created_after ? Date.parse(q.created_after) : undefined,
      createdBeforeMs: q.created_before ? Date.parse(q.created_before) : undefined,
      limit: q.limit,
      cursor: decodeCursor(q.cursor),
    });
    return { items: page.items.map(jobJson), nextCursor: page.nextCursor };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get a job (status, progress 0-100, result, error)",
  item: JobSchema,
  read: async (c, id) => {
    requireReader(c);
    return jobJson(await loadJob(c.get("ctx"), id));
  },
});

routes.get({
  path: "/{id}/result",
  summary: "A finished job's result, with each step's (409 not_finished while it runs)",
  item: JobResultSchema,
  read: async (c, id) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const job = await loadJob(ctx, id);
    if (!isFinalJobStatus(job.status)) {
      throw new AppError("not_finished", `job ${id} is ${job.status}; its result comes when it finishes`, {
        job_id: id,
        status: job.status,
      });
    }
    const steps = await listSequenceTasks(ctx.db, { kind: "job", id }, ctx.now());
    const named = resultArtifactIds(job.result);
    const resultArtifacts = (await readyArtifactsIn(ctx.db, named)).sort((a, b) => named.indexOf(a.id) - named.indexOf(b.id));
    return {
      job_id: job.id,
      status: job.status,
      result: job.result ?? null,
      error: job.error,
      error_code: job.errorCode,
      finished_at: iso(job.finishedAt),
      result_artifacts: resultArtifacts.map(resultArtifactJson),
      result_data_id: resultArtifacts[0]?.id ?? null,
      artifacts: (await artifactsOfJob(ctx.db, id, 200)).map(resultArtifactJson),
      steps: steps.map((t) => ({
        step_index: t.stepIndex ?? 0,
        iteration: t.iteration,
        item_index: t.itemIndex,
        task_id: t.id,
        status: t.status,
        result: t.result ?? null,
        error: t.error,
      })),
    };
  },
});

routes.act({
  method: "post",
  path: "/{id}/execute",
  summary: "Start a job created with execute: false (202)",
  item: JobSchema,
  errors: [401, 403, 404, 409],
  accepted: true,
  run: async (c, id) => {
    requireAdmin(c);
    return jobJson(await executeQueuedJob(c.get("ctx"), id));
  },
});

routes.act({
  method: "post",
  path: "/{id}/cancel",
  summary: "Cancel a job: its running step is stopped on its bot, the rest never run (409 once finished)",
  item: JobSchema,
  errors: [401, 403, 404, 409],
  run: async (c, id) => {
    requireAdmin(c);
    return jobJson(await cancelJob(c.get("ctx"), id, "cancelled by operator"));
  },
});

eventRoutes(jobsRouter, tags, "job");
