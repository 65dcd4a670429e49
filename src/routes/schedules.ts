/** /api/v1/schedules — cron or interval schedules; each due time runs a job (roadmap of seed 001). */
import { createRoute } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { errorResponses } from "../contracts/common";
import { JobSchema } from "../contracts/jobs";
import { ScheduleCreateBody, ScheduleListQuery, ScheduleSchema } from "../contracts/schedules";
import { decodeCursor } from "../db/pagination";
import { listSchedules } from "../db/schedules";
import { AppError, type RpcResult, unwrapRpc } from "../errors";
import { createRouter, idempotencyKey, jsonBody, jsonResponse } from "../http";
import { scheduleRunner } from "../objects/stubs";
import { jobJson, scheduleJson } from "../presenters";
import { createSchedule, loadSchedule, type RunOutcome, removeSchedule, setPaused } from "../services/schedules";
import { resourceRoutes } from "./resource-routes";

const tags = ["Schedules"];
export const schedulesRouter = createRouter();

schedulesRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Create a schedule: a cron pattern (5 fields, in a timezone) or an interval; each due time runs a job",
    request: jsonBody(ScheduleCreateBody),
    responses: {
      201: jsonResponse(ScheduleSchema, "Created (armed for next_run_at unless paused)"),
      200: jsonResponse(ScheduleSchema, "Replayed idempotent create"),
      ...errorResponses(400, 401, 403, 404, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const { resource, created } = await createSchedule(ctx, body, idempotencyKey(c, body.idempotency_key));
    return c.json(scheduleJson(resource), created ? 201 : 200);
  },
);

const routes = resourceRoutes(schedulesRouter, tags);

routes.list({
  path: "/",
  summary: "List schedules (newest first)",
  query: ScheduleListQuery,
  item: ScheduleSchema,
  read: async (c, q) => {
    const ctx = c.get("ctx");
    const page = await listSchedules(ctx.db, { status: q.status, limit: q.limit, cursor: decodeCursor(q.cursor) });
    return { items: page.items.map(scheduleJson), nextCursor: page.nextCursor };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get a schedule (next run, last run, counts of runs and skipped due times)",
  item: ScheduleSchema,
  read: async (c, id) => {
    requireReader(c);
    const ctx = c.get("ctx");
    return scheduleJson(await loadSchedule(ctx, id));
  },
});

for (const paused of [true, false]) {
  routes.act({
    method: "post",
    path: paused ? "/{id}/pause" : "/{id}/resume",
    summary: paused
      ? "Pause a schedule (no runs until resumed; running ones go on)"
      : "Resume a schedule (from its next due time; those missed while paused do not run)",
    item: ScheduleSchema,
    errors: [401, 403, 404],
    run: async (c, id) => {
      requireAdmin(c);
      return scheduleJson(await setPaused(c.get("ctx"), id, paused));
    },
  });
}

routes.act({
  method: "post",
  path: "/{id}/trigger",
  summary: "Run a schedule now, under its overlap policy (202 with the run's job; 409 run_in_progress when it skips)",
  item: JobSchema,
  errors: [401, 403, 404, 409],
  accepted: true,
  run: async (c, id) => {
    requireAdmin(c);
    const ctx = c.get("ctx");
    const key = idempotencyKey(c, undefined);
    // (typed by hand: RPC's serializable types lose the JSON columns' shapes)
    const outcome = unwrapRpc((await scheduleRunner(ctx.env, id).trigger(key)) as RpcResult<RunOutcome>);
    if (!outcome.job) throw new AppError(outcome.code, `schedule ${id} did not run: ${outcome.reason}`, { schedule_id: id });
    return jobJson(outcome.job);
  },
});

routes.remove({
  summary: "Delete a schedule (its runs stay; runs that never started are cancelled)",
  run: (c, id) => removeSchedule(c.get("ctx"), id),
});
