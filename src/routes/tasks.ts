/** /api/v1/tasks — create, query and drive a task through its lifecycle. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { errorResponses, PageQuery } from "../contracts/common";
import {
  MAX_BATCH_TASKS,
  TaskAssignBody,
  TaskBatchBody,
  TaskCancelBody,
  TaskCompleteBody,
  TaskCreateBody,
  TaskEventSchema,
  TaskFailBody,
  TaskListQuery,
  TaskSchema,
} from "../contracts/tasks";
import { isHeld, type TaskAction } from "../core/task-machine";
import { timeOrderedId } from "../crypto/ids";
import { decodeCursor } from "../db/pagination";
import { newTaskRow } from "../db/task-inserts";
import { deleteTaskRow } from "../db/task-writes";
import { getTaskByIdempotencyKey, listPendingTasks, listTaskEvents, listTasks } from "../db/tasks";
import { createRouter, idempotencyKey, jsonBody, jsonResponse } from "../http";
import { botSession } from "../objects/stubs";
import { taskEventJson, taskJson } from "../presenters";
import { createOnce, keyedRow, withoutKey } from "../services/create-once";
import { assignManually, createAndDispatch, releaseDeletedTask, settleOutcome } from "../services/dispatch";
import { applyTaskAction } from "../services/lifecycle";
import { chargeTaskCreation } from "../services/rate-limits";
import { readTask } from "../services/settle";
import { createTaskBatch } from "../services/task-batch";
import { resourceRoutes } from "./resource-routes";

const tags = ["Tasks"];
export const tasksRouter = createRouter();

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
    await chargeTaskCreation(ctx, c.get("principal"), [body.capability ?? null]);
    const key = idempotencyKey(c, body.idempotency_key);
    const { resource, created } = await createOnce(ctx, {
      kind: "task",
      key,
      request: withoutKey(body),
      find: async (k) => keyedRow(await getTaskByIdempotencyKey(ctx.db, k, ctx.now())),
      insert: async (requestHash) => {
        const nowMs = ctx.now();
        const row = newTaskRow({
          id: timeOrderedId(),
          payload: body.payload ?? {},
          capability: body.capability ?? null,
          priority: body.priority,
          timeoutSeconds: body.timeout_seconds,
          maxAttempts: body.max_attempts,
          idempotencyKey: key ?? null,
          idempotencyHash: requestHash,
          createdAt: nowMs,
          updatedAt: nowMs,
        });
        // Stored and given to a free bot in one round trip; answered with that row, or read back with why it waits.
        const claimed = await createAndDispatch(ctx, row);
        ctx.log.info("task created", {
          task_id: row.id,
          capability: row.capability,
          priority: row.priority,
          bot_id: claimed?.botId ?? null,
        });
        return claimed ? { ...claimed, waitingFor: null } : readTask(ctx, row.id);
      },
    });
    return c.json(taskJson(resource), created ? 201 : 200);
  },
);

tasksRouter.openapi(
  createRoute({
    method: "post",
    path: "/batch",
    tags,
    summary: `Create up to ${MAX_BATCH_TASKS} tasks in one call (all or nothing; idle bots pull them at once)`,
    request: jsonBody(TaskBatchBody),
    responses: {
      201: jsonResponse(z.array(TaskSchema), "Created (in request order; replayed tasks included)"),
      200: jsonResponse(z.array(TaskSchema), "Replayed idempotent batch (nothing new)"),
      ...errorResponses(400, 401, 403, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const body = c.req.valid("json");
    await chargeTaskCreation(
      c.get("ctx"),
      c.get("principal"),
      body.tasks.map((t) => t.capability ?? null),
    );
    const { tasks, created } = await createTaskBatch(c.get("ctx"), body.tasks, idempotencyKey(c, body.idempotency_key));
    return c.json(tasks.map(taskJson), created ? 201 : 200);
  },
);

const routes = resourceRoutes(tasksRouter, tags);

routes.list({
  path: "/",
  summary: "List tasks (filter by status, bot, workflow; newest first)",
  query: TaskListQuery,
  item: TaskSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const filter = { status: q.status, botId: q.bot_id, workflowId: q.workflow_id, limit: q.limit, cursor: decodeCursor(q.cursor) };
    const page = await listTasks(ctx.db, filter, ctx.now());
    return { items: page.items.map(taskJson), nextCursor: page.nextCursor };
  },
});

routes.list({
  path: "/pending",
  summary: "Pending tasks in dispatch order (priority, then age)",
  query: PageQuery.pick({ limit: true }),
  item: TaskSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    return { items: (await listPendingTasks(ctx.db, ctx.now(), q.limit)).map(taskJson), nextCursor: null };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get a task",
  item: TaskSchema,
  read: async (c, id) => {
    const task = await readTask(c.get("ctx"), id);
    requireReader(c, task.botId ?? "");
    return taskJson(task);
  },
});

routes.get({
  path: "/{id}/events",
  summary: "The task's recorded transitions, oldest first",
  item: z.array(TaskEventSchema),
  read: async (c, id) => {
    requireReader(c);
    const ctx = c.get("ctx");
    await readTask(ctx, id);
    return (await listTaskEvents(ctx.db, id, 500)).map(taskEventJson);
  },
});

routes.act({
  method: "post",
  path: "/{id}/assign",
  summary: "Assign a pending task to an online, idle bot",
  body: TaskAssignBody,
  item: TaskSchema,
  errors: [400, 401, 403, 404, 409],
  run: async (c, id, { bot_id }) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    await assignManually(ctx, id, bot_id);
    return taskJson(await readTask(ctx, id));
  },
});

/**
 * Lifecycle actions on a task: an admin on any task; with `botMay`, a bot on
 * the task it holds (start, complete, fail). Cancelling is an operator's act.
 */
function lifecycleRoute<Body>(
  path: string,
  summary: string,
  body: z.ZodType<Body> | undefined,
  toAction: (b: Body, reporterBotId?: string) => TaskAction,
  botMay: boolean,
) {
  routes.act({
    method: "post",
    path: `/{id}/${path}`,
    summary,
    body,
    item: TaskSchema,
    errors: [400, 401, 403, 404, 409],
    run: async (c, id, b) => {
      const ctx = c.get("ctx");
      // A bot acts only on the task it holds (or, with a late result, held last: the lifecycle decides); anyone else must be an admin.
      const principal = c.get("principal");
      const actingBotId = botMay && principal.kind === "bot" ? principal.botId : undefined;
      if (!actingBotId) requireAdmin(c);
      const action = toAction(b, actingBotId);
      const outcome = await applyTaskAction(ctx, id, action, { actingBotId });
      if (action.kind === "start" && outcome.task.botId) await botSession(ctx.env, outcome.task.botId).taskAssigned(id, false);
      else await settleOutcome(ctx, outcome);
      return taskJson(outcome.task);
    },
  });
}

lifecycleRoute("start", "Mark an assigned task as started", undefined, () => ({ kind: "start" }), true);
lifecycleRoute(
  "complete",
  "Complete a task with its result",
  TaskCompleteBody,
  (b, reporterBotId) => ({ kind: "complete", result: b.result ?? null, reporterBotId }),
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

routes.remove({
  summary: "Delete a task (a running one is cancelled on its bot first)",
  run: async (c, id) => {
    const ctx = c.get("ctx");
    const task = await readTask(ctx, id);
    await deleteTaskRow(ctx.db, id, ctx.now());
    if (task.botId && isHeld(task.status)) await releaseDeletedTask(ctx, task.botId, id);
    ctx.log.info("task deleted", { task_id: id, bot_id: task.botId });
  },
});
