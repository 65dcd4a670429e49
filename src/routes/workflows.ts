/** /api/v1/workflows — sequential steps; step N+1 runs only after step N completed. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { DeletedSchema, errorResponses, IdParam } from "../contracts/common";
import { WorkflowCreateBody, WorkflowListQuery, WorkflowSchema, WorkflowWithTasksSchema } from "../contracts/workflows";
import { isHeld } from "../core/task-machine";
import { decodeCursor } from "../db/pagination";
import { listWorkflowTasks, newTaskRow } from "../db/tasks";
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
import { createRouter, idempotencyKey, jsonBody, jsonResponse, setNextCursor } from "../http";
import { taskJson, workflowJson } from "../presenters";
import type { Ctx } from "../services/context";
import { createOnce } from "../services/create-once";
import { dispatchTask, releaseDeletedTask } from "../services/dispatch";

const tags = ["Workflows"];
export const workflowsRouter = createRouter();

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
      ...errorResponses(400, 401, 403, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const key = idempotencyKey(c, body.idempotency_key);
    const { resource, created } = await createOnce({
      key,
      find: async (k) => {
        const existing = await getWorkflowByIdempotencyKey(ctx.db, k);
        return existing && show(ctx, existing.id);
      },
      insert: async () => {
        const nowMs = ctx.now();
        const id = crypto.randomUUID();
        const steps =
          body.steps ?? (body.task_payloads ?? []).map((payload) => ({ payload, capability: undefined, timeout_seconds: undefined }));
        const workflow = {
          id,
          name: body.name,
          description: body.description ?? null,
          metadata: body.metadata,
          idempotencyKey: key ?? null,
        };
        await insertWorkflow(
          ctx.db,
          { ...workflow, createdAt: nowMs, updatedAt: nowMs },
          steps.map((step, index) =>
            newTaskRow({
              id: crypto.randomUUID(),
              payload: step.payload ?? {},
              capability: step.capability ?? body.capability ?? null,
              timeoutSeconds: step.timeout_seconds ?? body.timeout_seconds,
              priority: body.priority,
              maxAttempts: body.max_attempts,
              workflowId: id,
              stepIndex: index,
              ready: false,
              createdAt: nowMs,
              updatedAt: nowMs,
            }),
          ),
        );
        ctx.log.info("workflow created", { workflow_id: id, steps: steps.length });
        return show(ctx, id);
      },
    });
    return c.json(resource, created ? 201 : 200);
  },
);

workflowsRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "List workflows (newest first)",
    request: { query: WorkflowListQuery },
    responses: { 200: jsonResponse(z.array(WorkflowSchema), "Workflows"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const q = c.req.valid("query");
    const { items, nextCursor } = await listWorkflows(ctx.db, { status: q.status, limit: q.limit, cursor: decodeCursor(q.cursor) });
    const ids = await taskIdsOf(
      ctx.db,
      items.map((w) => w.id),
    );
    setNextCursor(c, nextCursor);
    return c.json(
      items.map((w) => workflowJson(w, ids.get(w.id) ?? [])),
      200,
    );
  },
);

workflowsRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags,
    summary: "Get a workflow",
    request: { params: IdParam },
    responses: { 200: jsonResponse(WorkflowSchema, "The workflow"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireReader(c);
    return c.json(await show(c.get("ctx"), c.req.valid("param").id), 200);
  },
);

workflowsRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}/tasks",
    tags,
    summary: "A workflow with its tasks in step order",
    request: { params: IdParam },
    responses: { 200: jsonResponse(WorkflowWithTasksSchema, "Workflow and tasks"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const workflow = await show(ctx, id);
    const rows = await listWorkflowTasks(ctx.db, id, ctx.now());
    return c.json({ workflow, tasks: rows.map(taskJson) }, 200);
  },
);

workflowsRouter.openapi(
  createRoute({
    method: "post",
    path: "/{id}/start",
    tags,
    summary: "Start a pending workflow: release its first step",
    request: { params: IdParam },
    responses: { 200: jsonResponse(WorkflowSchema, "Started"), ...errorResponses(401, 403, 404, 409) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
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
    return c.json(await show(ctx, id), 200);
  },
);

workflowsRouter.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags,
    summary: "Delete a workflow and its tasks (a running step is cancelled on its bot)",
    request: { params: IdParam },
    responses: { 200: jsonResponse(DeletedSchema, "Deleted"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    await loadWorkflow(ctx, id);
    const running = (await listWorkflowTasks(ctx.db, id, ctx.now())).filter((t) => t.botId && isHeld(t.status));
    await deleteWorkflowRows(ctx.db, id, ctx.now());
    for (const t of running) await releaseDeletedTask(ctx, t.botId!, t.id);
    ctx.log.info("workflow deleted", { workflow_id: id, running_steps_cancelled: running.length });
    return c.json({ id, deleted: true }, 200);
  },
);
