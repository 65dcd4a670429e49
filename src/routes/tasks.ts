/** /api/v1/tasks — create, query and drive a task through its lifecycle. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireAdminOrBot, requireReader } from "../auth";
import { DeletedSchema, errorResponses, IdParam, PageQuery } from "../contracts/common";
import {
  TaskAssignBody,
  TaskCancelBody,
  TaskCompleteBody,
  TaskCreateBody,
  TaskEventSchema,
  TaskFailBody,
  TaskListQuery,
  TaskSchema,
} from "../contracts/tasks";
import { isHeld, type TaskAction } from "../core/task-machine";
import { decodeCursor } from "../db/pagination";
import {
  deleteTaskRow,
  getTaskByIdempotencyKey,
  getTaskView,
  insertTasks,
  listPendingTasks,
  listTaskEvents,
  listTasks,
  newTaskRow,
} from "../db/tasks";
import { loadOr404 } from "../errors";
import { createRouter, idempotencyKey, jsonBody, jsonResponse, setNextCursor } from "../http";
import { botSession } from "../objects/stubs";
import { taskEventJson, taskJson } from "../presenters";
import type { Ctx } from "../services/context";
import { createOnce } from "../services/create-once";
import { assignManually, dispatchTask, releaseDeletedTask, settleOutcome } from "../services/dispatch";
import { applyTaskAction } from "../services/lifecycle";

const tags = ["Tasks"];
export const tasksRouter = createRouter();

const loadTask = (ctx: Ctx, id: string) => loadOr404("task", id, getTaskView(ctx.db, id, ctx.now()));

tasksRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Create a task (dispatched at once to an idle capable bot)",
    request: jsonBody(TaskCreateBody),
    responses: {
      201: jsonResponse(TaskSchema, "Created"),
      200: jsonResponse(TaskSchema, "Replayed idempotent create"),
      ...errorResponses(400, 401, 403, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const { resource, created } = await createOnce({
      key: idempotencyKey(c, body.idempotency_key),
      find: (key) => getTaskByIdempotencyKey(ctx.db, key, ctx.now()),
      insert: async () => {
        const nowMs = ctx.now();
        const row = newTaskRow({
          id: crypto.randomUUID(),
          payload: body.payload ?? {},
          capability: body.capability ?? null,
          priority: body.priority,
          timeoutSeconds: body.timeout_seconds,
          maxAttempts: body.max_attempts,
          idempotencyKey: idempotencyKey(c, body.idempotency_key) ?? null,
          createdAt: nowMs,
          updatedAt: nowMs,
        });
        await insertTasks(ctx.db, [row]);
        ctx.log.info("task created", { task_id: row.id, capability: row.capability, priority: row.priority });
        await dispatchTask(ctx, row);
        return loadTask(ctx, row.id);
      },
    });
    return c.json(taskJson(resource), created ? 201 : 200);
  },
);

tasksRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "List tasks (filter by status, bot, workflow; newest first)",
    request: { query: TaskListQuery },
    responses: { 200: jsonResponse(z.array(TaskSchema), "Tasks"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    const q = c.req.valid("query");
    requireReader(c);
    const ctx = c.get("ctx");
    const { items, nextCursor } = await listTasks(
      ctx.db,
      { status: q.status, botId: q.bot_id, workflowId: q.workflow_id, limit: q.limit, cursor: decodeCursor(q.cursor) },
      ctx.now(),
    );
    setNextCursor(c, nextCursor);
    return c.json(items.map(taskJson), 200);
  },
);

tasksRouter.openapi(
  createRoute({
    method: "get",
    path: "/pending",
    tags,
    summary: "Pending tasks in dispatch order (priority, then age)",
    request: { query: PageQuery.pick({ limit: true }) },
    responses: { 200: jsonResponse(z.array(TaskSchema), "Pending tasks"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    return c.json((await listPendingTasks(ctx.db, ctx.now(), c.req.valid("query").limit)).map(taskJson), 200);
  },
);

tasksRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}",
    tags,
    summary: "Get a task",
    request: { params: IdParam },
    responses: { 200: jsonResponse(TaskSchema, "The task"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    const ctx = c.get("ctx");
    const task = await loadTask(ctx, c.req.valid("param").id);
    requireReader(c, task.botId ?? "");
    return c.json(taskJson(task), 200);
  },
);

tasksRouter.openapi(
  createRoute({
    method: "get",
    path: "/{id}/events",
    tags,
    summary: "The task's recorded transitions, oldest first",
    request: { params: IdParam },
    responses: { 200: jsonResponse(z.array(TaskEventSchema), "Events"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    await loadTask(ctx, id);
    const rows = await listTaskEvents(ctx.db, id, 500);
    return c.json(rows.map(taskEventJson), 200);
  },
);

tasksRouter.openapi(
  createRoute({
    method: "post",
    path: "/{id}/assign",
    tags,
    summary: "Assign a pending task to an online, idle bot",
    request: { params: IdParam, ...jsonBody(TaskAssignBody) },
    responses: { 200: jsonResponse(TaskSchema, "Assigned"), ...errorResponses(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const { bot_id } = c.req.valid("json");
    await assignManually(ctx, id, bot_id);
    return c.json(taskJson(await loadTask(ctx, id)), 200);
  },
);

/**
 * Lifecycle actions on a task: an admin on any task; with `botMay`, a bot on
 * the task it holds (start, complete, fail). Cancelling is an operator's act.
 */
function lifecycleRoute<Body>(
  path: string,
  summary: string,
  body: z.ZodType<Body> | null,
  toAction: (b: Body) => TaskAction,
  botMay: boolean,
) {
  const bodySchema: z.ZodType | null = body; // the route's type stays non-generic, so params keep their types
  tasksRouter.openapi(
    createRoute({
      method: "post",
      path: `/{id}/${path}`,
      tags,
      summary,
      request: { params: IdParam, ...(bodySchema ? jsonBody(bodySchema) : {}) },
      responses: { 200: jsonResponse(TaskSchema, "The task after the transition"), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const ctx = c.get("ctx");
      const { id } = c.req.valid("param");
      // A bot acts only on the task it holds; anyone else must be an admin.
      let actingBotId: string | undefined;
      if (botMay && c.get("principal").kind === "bot") actingBotId = requireAdminOrBot(c, (await loadTask(ctx, id)).botId);
      else requireAdmin(c);
      const action = toAction(bodySchema ? (c.req.valid as (t: "json") => Body)("json") : ({} as Body));
      const outcome = await applyTaskAction(ctx, id, action, { actingBotId });
      if (action.kind === "start" && outcome.task.botId) await botSession(ctx.env, outcome.task.botId).taskAssigned(id, false);
      else await settleOutcome(ctx, outcome);
      return c.json(taskJson(outcome.task), 200);
    },
  );
}

lifecycleRoute("start", "Mark an assigned task as started", null, () => ({ kind: "start" }), true);
lifecycleRoute(
  "complete",
  "Complete a task with its result",
  TaskCompleteBody,
  (b) => ({ kind: "complete", result: b.result ?? null }),
  true,
);
lifecycleRoute(
  "fail",
  "Fail a task (re-queued with backoff while attempts remain, unless retry=false)",
  TaskFailBody,
  (b) => ({ kind: "fail", code: "bot_error", error: b.error, retry: b.retry }),
  true,
);
lifecycleRoute(
  "cancel",
  "Cancel a task (admin only; its bot is told to stop)",
  TaskCancelBody,
  (b) => ({ kind: "cancel", reason: b.reason ?? "cancelled by operator" }),
  false,
);

tasksRouter.openapi(
  createRoute({
    method: "delete",
    path: "/{id}",
    tags,
    summary: "Delete a task (a running one is cancelled on its bot first)",
    request: { params: IdParam },
    responses: { 200: jsonResponse(DeletedSchema, "Deleted"), ...errorResponses(401, 403, 404) },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const task = await loadTask(ctx, id);
    await deleteTaskRow(ctx.db, id, ctx.now());
    if (task.botId && isHeld(task.status)) await releaseDeletedTask(ctx, task.botId, id);
    ctx.log.info("task deleted", { task_id: id, bot_id: task.botId });
    return c.json({ id, deleted: true }, 200);
  },
);
