/** /api/v1/stats — figures for dashboards that no single resource holds (the Status Center's throughput chart). */
import { createRoute, z } from "@hono/zod-openapi";
import { requireReader } from "../auth";
import { errorResponses } from "../contracts/common";
import { finishedTasksPerMinute } from "../db/tasks";
import { createRouter, jsonResponse } from "../http";
import { iso } from "../presenters";

const tags = ["Stats"];
const MINUTE_MS = 60_000;
export const statsRouter = createRouter();

const ThroughputQuery = z.object({
  minutes: z.coerce.number().int().min(1).max(1440).default(30).openapi({ description: "How far back, in minutes (1–1440)." }),
});
const Throughput = z
  .object({
    interval_seconds: z.literal(60),
    minutes: z.array(
      z.object({
        at: z.string().openapi({ description: "The minute's start (ISO-8601)." }),
        completed: z.number().int(),
        failed: z.number().int().openapi({ description: "Tasks that failed for good (retried attempts are not counted)." }),
      }),
    ),
  })
  .openapi("Throughput");

statsRouter.openapi(
  createRoute({
    method: "get",
    path: "/throughput",
    tags,
    summary: "Tasks completed and failed per minute, oldest first (every minute listed, the current one last)",
    request: { query: ThroughputQuery },
    responses: { 200: jsonResponse(Throughput, "Per-minute counts"), ...errorResponses(400, 401, 403) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const { minutes } = c.req.valid("query");
    const currentMinute = Math.floor(ctx.now() / MINUTE_MS);
    const firstMinute = currentMinute - minutes + 1;
    const counted = new Map((await finishedTasksPerMinute(ctx.db, firstMinute * MINUTE_MS)).map((r) => [r.minute, r]));
    const series = Array.from({ length: minutes }, (_, i) => {
      const minute = firstMinute + i;
      const row = counted.get(minute);
      return { at: iso(minute * MINUTE_MS) as string, completed: row?.completed ?? 0, failed: row?.failed ?? 0 };
    });
    return c.json({ interval_seconds: 60 as const, minutes: series }, 200);
  },
);
