/** /api/v1/workflows — sequential steps; step N+1 runs only after step N completed. */
import { createRoute } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { errorResponses, IdParam } from "../contracts/common";
import { JobSchema, WorkflowExecuteBody, WorkflowExecuteQuery } from "../contracts/jobs";
import { stepRulesOf, WorkflowCreateBody, WorkflowListQuery, WorkflowSchema, WorkflowWithTasksSchema } from "../contracts/workflows";
import { isHeld } from "../core/task-machine";
import { timeOrderedId } from "../crypto/ids";
import { decodeCursor } from "../db/pagination";
import { newTaskRow } from "../db/task-inserts";
import { listSequenceTasks } from "../db/tasks";
import {
  deleteWorkflowRows,
  getWorkflow,
  getWorkflowByIdempotencyKey,
  insertWorkflow,
  listWorkflows,
  startWorkflow,
  taskIdsOf,
} from "../db/workflows";
import { AppError, loadOr404 } from "../errors";
import { createRouter, idempotencyKey, jsonBody, jsonResponse, optionalJsonBody } from "../http";
import { taskJson, workflowJson } from "../presenters";
import { inputArtifacts } from "../services/artifacts";
import type { Ctx } from "../services/context";
import { createOnce, withoutKey } from "../services/create-once";
import { dispatchTask, releaseDeletedTask } from "../services/dispatch";
import { countCreated } from "../services/metrics";
import { chargeTaskCreation } from "../services/rate-limits";
import { startJob, workflowSteps } from "./jobs";
import { resourceRoutes } from "./resource-routes";

const tags = ["Workflows"];
export const workflowsRouter = createRouter();

/** A step's rules as stored (null when it has none: a plain step costs nothing). */
const loadWorkflow = (ctx: Ctx, id: string) => loadOr404("workflow", id, getWorkflow(ctx.db, id));

async function show(ctx: Ctx, id: string) {
  const row = await loadWorkflow(ctx, id);
  return workflowJson(row, (await taskIdsOf(ctx.db, [id])).get(id) ?? []);
}

workflowsRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Create a workflow with its sequential steps (start it with /start)",
    request: jsonBody(WorkflowCreateBody),
    responses: {
      201: jsonResponse(WorkflowSchema, "Created"),
      200: jsonResponse(WorkflowSchema, "Replayed idempotent create"),
      ...errorResponses(400, 401, 403, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const stepCapabilities = body.steps
      ? body.steps.map((s) => s.capability ?? body.capability ?? null)
      : (body.task_payloads ?? []).map(() => body.capability ?? null);
    await chargeTaskCreation(ctx, c.get("principal"), stepCapabilities);
    const key = idempotencyKey(c, body.idempotency_key);
    const { resource, created } = await createOnce(ctx, {
      kind: "workflow",
      key,
      request: withoutKey(body),
      find: async (k) => {
        const existing = await getWorkflowByIdempotencyKey(ctx.db, k);
        return (
          existing && { resource: await show(ctx, existing.id), requestHash: existing.idempotencyHash, createdAtMs: existing.createdAt }
        );
      },
      insert: async (requestHash) => {
        const nowMs = ctx.now();
        const id = timeOrderedId();
        const steps = body.steps
          ? body.steps.map((step) => ({ ...step, rules: stepRulesOf(step) }))
          : (body.task_payloads ?? []).map((payload) => ({ payload, capability: undefined, timeout_seconds: undefined, rules: null }));
        const workflow = {
          id,
          name: body.name,
          description: body.description ?? null,
          metadata: body.metadata,
          idempotencyKey: key ?? null,
          idempotencyHash: requestHash,
        };
        const rows = steps.map((step, index) =>
          newTaskRow({
            id: timeOrderedId(),
            payload: step.payload ?? {},
            capability: step.capability ?? body.capability ?? null,
            timeoutSeconds: step.timeout_seconds ?? body.timeout_seconds,
            priority: body.priority,
            maxAttempts: body.max_attempts,
            workflowId: id,
            stepIndex: index,
            stepRules: step.rules,
            ready: false,
            createdAt: nowMs,
            updatedAt: nowMs,
          }),
        );
        await insertWorkflow(ctx.db, { ...workflow, createdAt: nowMs, updatedAt: nowMs }, rows);
        countCreated(rows);
        ctx.log.info("workflow created", { workflow_id: id, steps: steps.length });
        return show(ctx, id);
      },
    });
    return c.json(resource, created ? 201 : 200);
  },
);

workflowsRouter.openapi(
  createRoute({
    method: "post",
    path: "/{id}/execute",
    tags,
    summary: "Execute a workflow as a job: fresh tasks copied from its steps (202; watch websocket_url)",
    request: { params: IdParam, query: WorkflowExecuteQuery, ...optionalJsonBody(WorkflowExecuteBody) },
    responses: {
      202: jsonResponse(JobSchema, "Accepted; follow status_url or watch websocket_url"),
      200: jsonResponse(JobSchema, "Replayed idempotent execute"),
      ...errorResponses(400, 401, 403, 404, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const { id } = c.req.valid("param");
    const body = WorkflowExecuteBody.parse(c.req.valid("json"));
    const { input_data_id } = c.req.valid("query");
    const ids = input_data_id ? [input_data_id, ...body.input_artifact_ids] : body.input_artifact_ids;
    const spec = {
      kind: "workflow" as const,
      workflowId: id,
      steps: await workflowSteps(c, id),
      metadata: body.metadata,
      execute: body.execute,
      inputArtifacts: await inputArtifacts(c.get("ctx"), ids),
    };
    return startJob(c, spec, idempotencyKey(c, body.idempotency_key), { workflow_id: id, input_data_id, ...withoutKey(body) });
  },
);

const routes = resourceRoutes(workflowsRouter, tags);

routes.list({
  path: "/",
  summary: "List workflows (newest first)",
  query: WorkflowListQuery,
  item: WorkflowSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const page = await listWorkflows(ctx.db, { status: q.status, limit: q.limit, cursor: decodeCursor(q.cursor) });
    const ids = await taskIdsOf(
      ctx.db,
      page.items.map((w) => w.id),
    );
    return { items: page.items.map((w) => workflowJson(w, ids.get(w.id) ?? [])), nextCursor: page.nextCursor };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get a workflow",
  item: WorkflowSchema,
  read: (c, id) => {
    requireReader(c);
    return show(c.get("ctx"), id);
  },
});

routes.get({
  path: "/{id}/tasks",
  summary: "A workflow with its tasks in step order",
  item: WorkflowWithTasksSchema,
  read: async (c, id) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const workflow = await show(ctx, id);
    return { workflow, tasks: (await listSequenceTasks(ctx.db, { kind: "workflow", id }, ctx.now())).map(taskJson) };
  },
});

routes.act({
  method: "post",
  path: "/{id}/start",
  summary: "Start a pending workflow: release its first step",
  item: WorkflowSchema,
  errors: [401, 403, 404, 409],
  run: async (c, id) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const before = await loadWorkflow(ctx, id);
    if (!(await startWorkflow(ctx.db, id, ctx.now()))) {
      throw new AppError("invalid_transition", `cannot start a workflow that is ${before.status}`, {
        workflow_id: id,
        status: before.status,
      });
    }
    ctx.log.info("workflow started", { workflow_id: id });
    const first = (await taskIdsOf(ctx.db, [id])).get(id)?.[0];
    if (first) await dispatchTask(ctx, first);
    return show(ctx, id);
  },
});

routes.remove({
  summary: "Delete a workflow and its tasks (a running step is cancelled on its bot)",
  run: async (c, id) => {
    const ctx = c.get("ctx");
    await loadWorkflow(ctx, id);
    const running = (await listSequenceTasks(ctx.db, { kind: "workflow", id }, ctx.now())).filter((t) => t.botId && isHeld(t.status));
    await deleteWorkflowRows(ctx.db, id, ctx.now());
    for (const t of running) await releaseDeletedTask(ctx, t.botId!, t.id);
    ctx.log.info("workflow deleted", { workflow_id: id, running_steps_cancelled: running.length });
  },
});
