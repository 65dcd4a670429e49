/**
 * /api/v1/artifacts — files into and out of jobs, stored in R2 (seed 003's /data/upload and
 * /data/{id}/download are aliases); /api/v1/tasks/{id}/artifacts — a bot's signed upload for its task.
 * Uploads stream (the Worker never holds a file whole), so their bodies skip the JSON middleware.
 */
import { createRoute } from "@hono/zod-openapi";
import { requireAdmin, requireAdminOrBot, requireReader } from "../auth";
import {
  ArtifactListQuery,
  ArtifactSchema,
  ArtifactUploadQuery,
  binaryBody,
  binaryResponse,
  SignedQuery,
  TaskUploadBody,
  TaskUploadSchema,
} from "../contracts/artifacts";
import { errorResponses, IdParam } from "../contracts/common";
import { listArtifacts } from "../db/artifacts";
import { decodeCursor } from "../db/pagination";
import { getTask } from "../db/tasks";
import { AppError, loadOr404 } from "../errors";
import { type AppContext, createRouter, jsonBody, jsonResponse } from "../http";
import { artifactJson } from "../presenters";
import { type Verdict, verifyUrl } from "../services/artifact-urls";
import { loadArtifact, receiveUpload, removeArtifacts, serveContent, startTaskUpload, uploadArtifact } from "../services/artifacts";
import { resourceRoutes } from "./resource-routes";

const tags = ["Artifacts"];
export const artifactsRouter = createRouter();
export const dataRouter = createRouter();
export const taskArtifactsRouter = createRouter();

/** Requests whose body is an artifact's bytes: no body-size cap of the JSON API, no JSON parsing. */
export const STREAMING_UPLOAD = /^\/api\/v1\/(artifacts|data\/upload|artifacts\/[^/]+\/content)$/;

const REFUSED: Record<Exclude<Verdict, "ok">, string> = {
  expired: "this signed URL has expired; ask for a new one",
  invalid: "this signed URL's signature does not match",
};

async function requireSigned(c: AppContext, method: "GET" | "PUT", id: string): Promise<void> {
  const verdict = await verifyUrl(c.get("ctx"), method, id, c.req.query("expires"), c.req.query("signature"));
  if (verdict !== "ok") throw new AppError("forbidden", REFUSED[verdict], { reason: verdict });
}

const uploadRoute = (path: string, summary: string) =>
  createRoute({
    method: "post",
    path,
    tags,
    summary,
    description:
      "The body is the file: raw bytes with their `Content-Type`, or `multipart/form-data` (the first file part; `name` and `kind` may also come as fields before it). Streamed to R2, hashed (SHA-256), limited to ARTIFACT_MAX_BYTES (100 MiB).",
    request: { query: ArtifactUploadQuery, ...binaryBody("The file") },
    responses: { 201: jsonResponse(ArtifactSchema, "Stored"), ...errorResponses(400, 401, 403, 404, 413) },
  });

async function upload(c: AppContext) {
  requireAdmin(c);
  const q = ArtifactUploadQuery.parse(c.req.query());
  const row = await uploadArtifact(
    c.get("ctx"),
    c.req.raw,
    { name: q.name, kind: q.kind, jobId: q.job_id, taskId: q.task_id, projectId: q.project_id },
    "admin",
  );
  c.header("Location", `/api/v1/artifacts/${row.id}`);
  return c.json(artifactJson(row), 201);
}

artifactsRouter.openapi(uploadRoute("/", "Upload an artifact (streamed into R2)"), upload);
dataRouter.openapi(uploadRoute("/upload", "Upload data for a workflow run (seed 003; the same as POST /artifacts)"), upload);

const contentRoute = (path: string, summary: string) =>
  createRoute({
    method: "get",
    path,
    tags,
    summary,
    description:
      "Streamed, with Content-Length, ETag (its SHA-256) and single byte ranges (206; 416 past the end). Images and plain text are inline, anything else a download. With an API token, or a signed URL (`expires`, `signature`).",
    request: { params: IdParam, query: SignedQuery },
    responses: {
      200: binaryResponse("The content"),
      206: binaryResponse("One range of it"),
      304: { description: "Not modified (If-None-Match)" },
      ...errorResponses(401, 403, 404, 416),
    },
  });

async function download(c: AppContext, id: string) {
  if (c.req.query("signature") !== undefined && !c.get("principal")) await requireSigned(c, "GET", id);
  else requireReader(c);
  const ctx = c.get("ctx");
  return serveContent(ctx, await loadArtifact(ctx, id), c.req.raw);
}

artifactsRouter.openapi(contentRoute("/{id}/content", "Download an artifact's content"), (c) => download(c, c.req.valid("param").id));
dataRouter.openapi(contentRoute("/{id}/download", "Download data (seed 003; the same as GET /artifacts/{id}/content)"), (c) =>
  download(c, c.req.valid("param").id),
);

artifactsRouter.openapi(
  createRoute({
    method: "put",
    path: "/{id}/content",
    tags,
    summary: "Upload a pending artifact's bytes with its signed URL (from POST /tasks/{id}/artifacts)",
    request: { params: IdParam, query: SignedQuery, ...binaryBody("The file's bytes") },
    responses: { 200: jsonResponse(ArtifactSchema, "Stored"), ...errorResponses(400, 403, 404, 409, 413) },
  }),
  async (c) => {
    const { id } = c.req.valid("param");
    await requireSigned(c, "PUT", id);
    const ctx = c.get("ctx");
    return c.json(artifactJson(await receiveUpload(ctx, await loadArtifact(ctx, id), c.req.raw)), 200);
  },
);

const routes = resourceRoutes(artifactsRouter, tags);

routes.list({
  path: "/",
  summary: "List stored artifacts (filter by job, task, project, kind; newest first)",
  query: ArtifactListQuery,
  item: ArtifactSchema,
  read: async (c, q) => {
    const page = await listArtifacts(c.get("ctx").db, {
      jobId: q.job_id,
      taskId: q.task_id,
      projectId: q.project_id,
      kind: q.kind,
      limit: q.limit,
      cursor: decodeCursor(q.cursor),
    });
    return { items: page.items.map(artifactJson), nextCursor: page.nextCursor };
  },
});

routes.get({
  path: "/{id}",
  summary: "Get an artifact's metadata (name, type, size, SHA-256, what it belongs to)",
  item: ArtifactSchema,
  read: async (c, id) => {
    requireReader(c);
    return artifactJson(await loadArtifact(c.get("ctx"), id));
  },
});

routes.remove({
  summary: "Delete an artifact (its bytes and its record)",
  run: async (c, id) => {
    const ctx = c.get("ctx");
    await removeArtifacts(ctx, [await loadArtifact(ctx, id)]);
    ctx.log.info("artifact deleted", { artifact_id: id });
  },
});

taskArtifactsRouter.openapi(
  createRoute({
    method: "post",
    path: "/{id}/artifacts",
    tags,
    summary: "Start an upload for a task being run: a pending artifact and its signed PUT URL (the bot holding it, or an admin)",
    request: { params: IdParam, ...jsonBody(TaskUploadBody) },
    responses: { 201: jsonResponse(TaskUploadSchema, "Upload started"), ...errorResponses(400, 401, 403, 404, 409) },
  }),
  async (c) => {
    const ctx = c.get("ctx");
    const { id } = c.req.valid("param");
    const task = await loadOr404("task", id, getTask(ctx.db, id));
    const botId = requireAdminOrBot(c, task.botId);
    const { artifact, upload: signed } = await startTaskUpload(ctx, task, c.req.valid("json"), botId ?? "admin");
    return c.json({ artifact: artifactJson(artifact), upload: signed }, 201);
  },
);
