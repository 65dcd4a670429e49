/** /api/v1/projects — seed 000: created at once, a website initialized in the background by an OpenClaw run. */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { errorResponses } from "../contracts/common";
import { ProjectCreateBody, ProjectListQuery, ProjectSchema, ProjectStatusSchema, ProjectTypeSchema } from "../contracts/projects";
import { isFinalJobStatus } from "../core/job";
import { PROJECT_TYPES } from "../core/project";
import { streamName } from "../core/stream";
import { getJob } from "../db/jobs";
import { decodeCursor } from "../db/pagination";
import { deleteProjectRow, listProjects } from "../db/projects";
import { createRouter, idempotencyKey, jsonBody, jsonResponse } from "../http";
import { projectJson } from "../presenters";
import { withoutKey } from "../services/create-once";
import { cancelJob } from "../services/jobs";
import { createProject, loadProject, reinitializeProject } from "../services/projects";
import { destroyStream } from "../services/streams";
import { resourceRoutes } from "./resource-routes";
import { eventRoutes } from "./streams";

const tags = ["Projects"];
export const projectsRouter = createRouter();

projectsRouter.openapi(
  createRoute({
    method: "post",
    path: "/",
    tags,
    summary: "Create a project (202; a website is initialized in the background: status creating → ready | failed)",
    request: jsonBody(ProjectCreateBody),
    responses: {
      202: jsonResponse(ProjectSchema, "Accepted; poll status_url or watch websocket_url"),
      200: jsonResponse(ProjectSchema, "Replayed idempotent create"),
      ...errorResponses(400, 401, 403, 409, 413),
    },
  }),
  async (c) => {
    requireAdmin(c);
    const body = c.req.valid("json");
    const input = { name: body.name, domain: body.domain, description: body.description ?? null, typeId: body.typeId };
    const { resource, created } = await createProject(c.get("ctx"), input, idempotencyKey(c, body.idempotency_key), withoutKey(body));
    c.header("Location", `/api/v1/projects/${resource.id}`);
    return c.json(projectJson(resource), created ? 202 : 200);
  },
);

const routes = resourceRoutes(projectsRouter, tags);

routes.list({
  path: "/",
  summary: "List projects (filter by status and type; newest first)",
  query: ProjectListQuery,
  item: ProjectSchema,
  read: async (c, q) => {
    const page = await listProjects(c.get("ctx").db, {
      status: q.status,
      typeId: q.type_id,
      limit: q.limit,
      cursor: decodeCursor(q.cursor),
    });
    return { items: page.items.map(projectJson), nextCursor: page.nextCursor };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get a project",
  item: ProjectSchema,
  read: async (c, id) => {
    requireReader(c);
    return projectJson(await loadProject(c.get("ctx"), id));
  },
});

routes.get({
  path: "/{id}/status",
  summary: 'Seed 000\'s status: exactly {"status": "creating" | "ready" | "failed"}',
  item: ProjectStatusSchema,
  read: async (c, id) => {
    requireReader(c);
    return { status: (await loadProject(c.get("ctx"), id)).status };
  },
});

routes.act({
  method: "post",
  path: "/{id}/initialize",
  summary: "Run a failed website project's initialization again (202; 409 unless it failed)",
  item: ProjectSchema,
  errors: [401, 403, 404, 409],
  accepted: true,
  run: async (c, id) => {
    requireAdmin(c);
    return projectJson(await reinitializeProject(c.get("ctx"), id));
  },
});

routes.remove({
  summary: "Delete a project (a running initialization is cancelled on its bot)",
  run: async (c, id) => {
    const ctx = c.get("ctx");
    const project = await loadProject(ctx, id);
    const job = project.initJobId ? await getJob(ctx.db, project.initJobId) : undefined;
    if (job && !isFinalJobStatus(job.status)) await cancelJob(ctx, job.id, "project deleted");
    await deleteProjectRow(ctx.db, id);
    await destroyStream(ctx, streamName("project", id));
    ctx.log.info("project deleted", { project_id: id, init_job_id: project.initJobId });
  },
});

eventRoutes(projectsRouter, tags, "project");

export const projectTypesRouter = createRouter();

projectTypesRouter.openapi(
  createRoute({
    method: "get",
    path: "/",
    tags,
    summary: "Seed 000's project types (typeId); only websites are initialized by an OpenClaw run",
    responses: { 200: jsonResponse(z.array(ProjectTypeSchema), "Project types"), ...errorResponses(401, 403) },
  }),
  (c) => {
    requireReader(c);
    return c.json(
      PROJECT_TYPES.map((t) => ({ ...t })),
      200,
    );
  },
);
