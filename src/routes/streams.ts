/**
 * Watching: `WS /api/v1/ws/{jobs|execution|projects|deployments}/{id}` and
 * `/ws/fleet` (the current state first, then live events; `?since=<seq>`
 * resumes without a gap or a duplicate), `GET /…/{id}/events` (the same log,
 * paged; Server-Sent Events with `Accept: text/event-stream`, resumed by
 * `Last-Event-ID`), and `POST /api/v1/stream-tickets` for browsers, which
 * cannot put a token in a WebSocket's headers and must not put one in a URL.
 */
import { createRoute, z } from "@hono/zod-openapi";
import { requireReader } from "../auth";
import { errorResponses, IdParam } from "../contracts/common";
import { FLEET_STREAM, type StreamDialect, type StreamKind, type StreamMessage, streamName } from "../core/stream";
import { getDeployment } from "../db/deployments";
import { getJob } from "../db/jobs";
import { getProject } from "../db/projects";
import { AppError, loadOr404 } from "../errors";
import { type AppContext, type AppRouter, createRouter, jsonBody, jsonResponse, setNextCursor } from "../http";
import { STREAM_DIALECT_HEADER, STREAM_SINCE_HEADER } from "../objects/event-stream";
import { eventStream } from "../objects/stubs";
import type { Ctx } from "../services/context";

/** How long a stream ticket opens a connection (it is used once, at connect). */
export const STREAM_TICKET_TTL_MS = 60_000;

/** Each watchable resource: how to 404 an unknown id. */
const RESOURCES: Record<StreamKind, (ctx: Ctx, id: string) => Promise<unknown>> = {
  job: (ctx, id) => loadOr404("job", id, getJob(ctx.db, id)),
  project: (ctx, id) => loadOr404("project", id, getProject(ctx.db, id)),
  deployment: (ctx, id) => loadOr404("deployment", id, getDeployment(ctx.db, id)),
};
const WS_PATHS: Record<StreamKind, string> = { job: "jobs", project: "projects", deployment: "deployments" };

function parseSince(raw: string | undefined | null): number | null {
  if (raw === undefined || raw === null || raw === "") return null;
  if (!/^\d{1,15}$/.test(raw))
    throw new AppError("validation_failed", "since must be a non-negative integer (a seq this stream sent)", { field: "since" });
  return Number(raw);
}

/**
 * Who may watch: a reader's token (checked before anything is looked up), or a
 * single-use ticket for this very stream (consumed last, once the request is
 * known to be good, so a bad request does not burn it). Returns the ticket check.
 */
function watcherAuth(c: AppContext, stream: string): () => Promise<void> {
  const ticket = c.req.query("ticket");
  if (ticket === undefined) {
    requireReader(c);
    return async () => {};
  }
  return async () => {
    if (ticket.length > 200 || !(await eventStream(c.env, stream).consumeTicket(ticket))) {
      throw new AppError("unauthorized", "this stream ticket is invalid, expired or already used");
    }
  };
}

/** Hands the watcher to the stream's object, which replays and then streams. */
async function forwardWatcher(c: AppContext, stream: string, since: number | null, dialect: StreamDialect): Promise<Response> {
  const forwarded = new Request(c.req.raw);
  forwarded.headers.set(STREAM_SINCE_HEADER, since === null ? "" : String(since));
  forwarded.headers.set(STREAM_DIALECT_HEADER, dialect);
  return eventStream(c.env, stream).fetch(forwarded);
}

export const streamsRouter = createRouter();

async function watch(c: AppContext, stream: string, dialect: StreamDialect, load?: () => Promise<unknown>) {
  const useTicket = watcherAuth(c, stream);
  if (c.req.header("Upgrade")?.toLowerCase() !== "websocket") {
    throw new AppError("upgrade_required", "this endpoint speaks WebSocket: send 'Upgrade: websocket'");
  }
  const since = parseSince(c.req.query("since"));
  await load?.();
  await useTicket();
  return forwardWatcher(c, stream, since, dialect);
}

for (const kind of Object.keys(WS_PATHS) as StreamKind[]) {
  streamsRouter.get(`/${WS_PATHS[kind]}/:id`, (c) => {
    const id = c.req.param("id");
    return watch(c, streamName(kind, id), "seed003", () => RESOURCES[kind](c.get("ctx"), id));
  });
}
// Seed 004's name for a job's stream; its final event is `execution_completed`.
streamsRouter.get("/execution/:id", (c) => {
  const id = c.req.param("id");
  return watch(c, streamName("job", id), "seed004", () => RESOURCES.job(c.get("ctx"), id));
});
streamsRouter.get("/fleet", (c) => watch(c, FLEET_STREAM, "seed003"));

const WatchQuery = z.object({
  since: z.string().optional().openapi({ description: "Resume after this seq (no gap, no duplicate)" }),
  ticket: z.string().optional().openapi({ description: "A single-use ticket from POST /stream-tickets (browsers)" }),
});
for (const [path, what] of [
  ["/jobs/{id}", "a job (seed 003)"],
  ["/execution/{id}", "a job, seed 004's names (execution_completed)"],
  ["/projects/{id}", "a project's initialization"],
  ["/deployments/{id}", "a deployment"],
] as const) {
  streamsRouter.openAPIRegistry.registerPath({
    method: "get",
    path,
    tags: ["Streams"],
    summary: `Live events of ${what} (Upgrade: websocket): the current state first, then {type, seq, timestamp, data}`,
    request: { params: IdParam, query: WatchQuery },
    responses: { 101: { description: "Switching protocols" }, ...errorResponses(400, 401, 403, 404) },
  });
}
streamsRouter.openAPIRegistry.registerPath({
  method: "get",
  path: "/fleet",
  tags: ["Streams"],
  summary: "Live fleet events (Upgrade: websocket): bots coming and going, job and deployment summaries, queue depth",
  request: { query: WatchQuery },
  responses: { 101: { description: "Switching protocols" }, ...errorResponses(400, 401, 403) },
});

const StreamEvent = z
  .object({ type: z.string(), seq: z.number().int(), timestamp: z.string(), data: z.record(z.string(), z.unknown()) })
  .passthrough()
  .openapi("StreamEvent");
const EventsQuery = z.object({
  since: z.string().optional().openapi({ description: "Events after this seq (default 0: from the start)" }),
  limit: z.coerce.number().int().min(1).max(500).default(200),
  ticket: z.string().optional(),
});

/**
 * `GET /{id}/events` on a resource's router: a page of its stream (oldest first,
 * `Link` to the next), or Server-Sent Events with `Accept: text/event-stream`.
 */
export function eventRoutes(router: AppRouter, tags: string[], kind: StreamKind) {
  router.openapi(
    createRoute({
      method: "get",
      path: "/{id}/events",
      tags,
      summary: "The event log, paged by seq (or Server-Sent Events with Accept: text/event-stream, resumed by Last-Event-ID)",
      request: { params: IdParam, query: EventsQuery },
      responses: { 200: jsonResponse(z.array(StreamEvent), "Events in order"), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { id } = c.req.valid("param");
      const q = c.req.valid("query");
      const stream = streamName(kind, id);
      const useTicket = watcherAuth(c, stream);
      const sse = c.req.header("Accept")?.includes("text/event-stream");
      const since = parseSince(sse ? (c.req.header("Last-Event-ID") ?? q.since) : q.since) ?? 0;
      await RESOURCES[kind](c.get("ctx"), id);
      await useTicket();
      if (sse) return forwardWatcher(c, stream, since, "seed003") as never;
      // (RPC types cannot express `data: Record<string, unknown>`; this is the object's own StreamMessage[])
      const { events, lastSeq } = (await eventStream(c.env, stream).read(since, q.limit)) as { events: StreamMessage[]; lastSeq: number };
      const last = events[events.length - 1]?.seq;
      if (last !== undefined && last < lastSeq) setNextCursor(c, String(last), "since");
      return c.json(events, 200);
    },
  );
}

export const streamTicketsRouter = createRouter();

const TicketBody = z
  .object({
    resource: z.enum(["job", "project", "deployment", "fleet"]),
    id: z.string().min(1).max(100).optional().openapi({ description: "The job, project or deployment (not for fleet)" }),
  })
  .refine((b) => (b.resource === "fleet") === (b.id === undefined), { message: "give an id, except for the fleet", path: ["id"] })
  .openapi("StreamTicketCreate");
const Ticket = z
  .object({ ticket: z.string(), stream: z.string(), expires_at: z.string(), websocket_url: z.string(), events_url: z.string().nullable() })
  .openapi("StreamTicket");

streamTicketsRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags: ["Streams"],
    summary: `A single-use ticket to watch one stream (browsers: ?ticket= instead of a token in the URL); valid ${STREAM_TICKET_TTL_MS / 1000} s`,
    request: jsonBody(TicketBody),
    responses: { 201: jsonResponse(Ticket, "Created"), ...errorResponses(400, 401, 403, 404) },
  }),
  async (c) => {
    requireReader(c);
    const ctx = c.get("ctx");
    const body = c.req.valid("json");
    const kind = body.resource === "fleet" ? null : body.resource;
    if (kind) await RESOURCES[kind](ctx, body.id!);
    const stream = kind ? streamName(kind, body.id!) : FLEET_STREAM;
    const ticket = await eventStream(c.env, stream).mintTicket(STREAM_TICKET_TTL_MS);
    const q = `ticket=${encodeURIComponent(ticket)}`;
    return c.json(
      {
        ticket,
        stream,
        expires_at: new Date(ctx.now() + STREAM_TICKET_TTL_MS).toISOString(),
        websocket_url: kind ? `/api/v1/ws/${WS_PATHS[kind]}/${body.id}?${q}` : `/api/v1/ws/fleet?${q}`,
        events_url: kind ? `/api/v1/${WS_PATHS[kind]}/${body.id}/events?${q}` : null,
      },
      201,
    );
  },
);
