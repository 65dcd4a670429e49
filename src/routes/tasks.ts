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
import { deriveBotStatus } from "../core/bot-status";
import { isHeld, type TaskAction } from "../core/task-machine";
import { getBot } from "../db/bots";
import { decodeCursor } from "../db/pagination";
import type { TaskRow } from "../db/schema";
import { iso, taskJson } from "../db/serialize";
import {
  claimTask,
  deleteTaskRow,
  getTask,
  getTaskByIdempotencyKey,
  insertTasks,
  listPendingTasks,
  listTaskEvents,
  listTasks,
} from "../db/tasks";
import { AppError, notFound } from "../errors";
import { type AppContext, createRouter, jsonBody, jsonResponse, setNextCursor } from "../http";
import { botStub, type Ctx } from "../services/context";
import { dispatchTask, releaseDeletedTask, settleOutcome } from "../services/dispatch";
import { applyTaskAction } from "../services/lifecycle";

const tags = ["Tasks"];
export const tasks = createRouter();

async function loadTask(ctx: Ctx, id: string) {
  const row = await getTask(ctx.db, id, ctx.now());
  if (!row) throw notFound("task", id);
  return row;
}

/** Header `Idempotency-Key` wins over the body's `idempotency_key`. */
export function idempotencyKey(c: AppContext, fromBody: string | undefined): string | undefined {
  const header = c.req.header("Idempotency-Key")?.trim();
  if (header && header.length > 200) throw new AppError("validation_failed", "Idempotency-Key is longer than 200 characters");
  return header || fromBody;
}

tasks.openapi(
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
    const key = idempotencyKey(c, body.idempotency_key);
    if (key) {
      const existing = await getTaskByIdempotencyKey(ctx.db, key, ctx.now());
      if (existing) return c.json(taskJson(existing), 200);
    }
    const nowMs = ctx.now();
    const id = crypto.randomUUID();
    const row: TaskRow = {
      id,
      payload: body.payload ?? {},
      capability: body.capability ?? null,
      priority: body.priority,
      timeoutSeconds: body.timeout_seconds,
      maxAttempts: body.max_attempts,
      idempotencyKey: key ?? null,
      createdAt: nowMs,
      updatedAt: nowMs,
      attempts: 0,
      status: "pending",
      botId: null,
      workflowId: null,
      jobId: null,
      stepIndex: null,
      ready: true,
      runAfter: 0,
      result: null,
      error: null,
      errorCode: null,
      progress: null,
      progressMessage: null,
      version: 0,
      writeId: null,
      assignedAt: null,
      startedAt: null,
      completedAt: null,
      failedAt: null,
      cancelledAt: null,
    };
    try {
      await insertTasks(ctx.db, [row]);
    } catch (err) {
      // Two creates with one key raced: the loser returns the winner's task.
      const winner = key ? await getTaskByIdempotencyKey(ctx.db, key, ctx.now()) : undefined;
      if (winner) return c.json(taskJson(winner), 200);
      throw err;
    }
    ctx.log.info("task created", { task_id: id, capability: body.capability ?? null, priority: body.priority });
    await dispatchTask(ctx, row);
    return c.json(taskJson(await loadTask(ctx, id)), 201);
  },
);

tasks.openapi(
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

tasks.openapi(
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

tasks.openapi(
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

tasks.openapi(
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
    return c.json(
      rows.map((e) => ({ id: e.id, type: e.type, data: e.data, created_at: iso(e.createdAt)! })),
      200,
    );
  },
);

tasks.openapi(
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
    const task = await loadTask(ctx, id);
    const bot = await getBot(ctx.db, bot_id);
    if (!bot) throw notFound("bot", bot_id);
    if (task.status !== "pending")
      throw new AppError("invalid_transition", `cannot assign a task that is ${task.status}`, { task_id: id, status: task.status });
    if (!task.ready)
      throw new AppError("invalid_transition", "this workflow step is not released yet (its previous step has not completed)", {
        task_id: id,
        status: task.status,
      });
    const status = deriveBotStatus(
      {
        connected: bot.connected,
        held: bot.held,
        currentTaskId: bot.currentTaskId,
        lastHeartbeatAtMs: bot.lastHeartbeatAt,
        disconnectedAtMs: bot.disconnectedAt,
      },
      ctx.now(),
      ctx.config.botStaleAfterMs,
    );
    if (status !== "online") throw new AppError("bot_unavailable", `bot ${bot_id} is ${status}`, { bot_id, status });
    if (bot.capabilities && task.capability && !bot.capabilities.includes(task.capability)) {
      throw new AppError("bot_unavailable", `bot ${bot_id} lacks capability ${task.capability}`, { bot_id, capability: task.capability });
    }
    if (!(await claimTask(ctx.db, task, bot_id, ctx.now(), false))) {
      throw new AppError("conflict", "the task or the bot changed while assigning; nothing was changed", { task_id: id, bot_id });
    }
    ctx.log.info("task assigned manually", { task_id: id, bot_id });
    await botStub(ctx, bot_id).taskAssigned(bot_id, id);
    return c.json(taskJson(await loadTask(ctx, id)), 200);
  },
);

/** Lifecycle actions a bot may do on a task it holds (or an admin on any). */
function lifecycleRoute(path: string, summary: string, body: z.ZodType | null, toAction: (b: any) => TaskAction) {
  tasks.openapi(
    createRoute({
      method: "post",
      path: `/{id}/${path}`,
      tags,
      summary,
      request: { params: IdParam, ...(body ? jsonBody(body) : {}) },
      responses: { 200: jsonResponse(TaskSchema, "The task after the transition"), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const ctx = c.get("ctx");
      const { id } = c.req.valid("param");
      const p = c.get("principal");
      const actingBotId = p.kind === "bot" ? requireAdminOrBot(c, (await loadTask(ctx, id)).botId) : (requireAdmin(c), undefined);
      const action = toAction(body ? (c.req.valid as (t: "json") => unknown)("json") : {});
      const outcome = await applyTaskAction(ctx, id, action, { actingBotId });
      if (action.kind === "start" && outcome.task.botId) await botStub(ctx, outcome.task.botId).taskAssigned(outcome.task.botId, id, false);
      else await settleOutcome(ctx, outcome);
      return c.json(taskJson(outcome.task), 200);
    },
  );
}

lifecycleRoute("start", "Mark an assigned task as started", null, () => ({ kind: "start" }));
lifecycleRoute("complete", "Complete a task with its result", TaskCompleteBody, (b) => ({ kind: "complete", result: b.result ?? null }));
lifecycleRoute("fail", "Fail a task (re-queued with backoff while attempts remain, unless retry=false)", TaskFailBody, (b) => ({
  kind: "fail",
  code: "bot_error",
  error: b.error,
  retry: b.retry,
}));
lifecycleRoute("cancel", "Cancel a task (its bot is told to stop)", TaskCancelBody, (b) => ({
  kind: "cancel",
  reason: b.reason ?? "cancelled by operator",
}));

tasks.openapi(
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
