/**
 * Artifacts end to end: an upload streamed into R2 and recorded in D1 only once its bytes are in (so a
 * refused or broken upload leaves nothing), a bot's signed upload for the task it holds, content served
 * with ranges and validators, and removal (one, or a bounded batch for retention).
 */
import { type ArtifactKind, contentDisposition, parseRange } from "../core/artifact";
import { streamName } from "../core/stream";
import { isHeld } from "../core/task-machine";
import { timeOrderedId } from "../crypto/ids";
import { artifactsToRemove, deleteArtifactRows, getArtifact, insertArtifact, markArtifactReady, readyArtifactsIn } from "../db/artifacts";
import { getJob } from "../db/jobs";
import { getProject } from "../db/projects";
import type { ArtifactRow, InputArtifact, TaskRow } from "../db/schema";
import { getTask } from "../db/tasks";
import { AppError, loadOr404 } from "../errors";
import { artifactContentPath } from "../presenters";
import { storeStream } from "./artifact-store";
import { type SignedUrl, signUrl } from "./artifact-urls";
import type { Ctx } from "./context";
import { firstFile } from "./multipart";
import { publish } from "./streams";

export interface ArtifactMeta {
  name?: string;
  kind: ArtifactKind;
  jobId?: string;
  taskId?: string;
  projectId?: string;
}

export const loadArtifact = (ctx: Ctx, id: string) => loadOr404("artifact", id, getArtifact(ctx.db, id));
const r2KeyOf = (id: string) => `artifacts/${id}`;
const MAX_NAME_LENGTH = 255;

/** A referenced job, task or project must exist (404 names which). */
async function checkRefs(ctx: Ctx, meta: ArtifactMeta): Promise<void> {
  if (meta.jobId) await loadOr404("job", meta.jobId, getJob(ctx.db, meta.jobId));
  if (meta.taskId) await loadOr404("task", meta.taskId, getTask(ctx.db, meta.taskId));
  if (meta.projectId) await loadOr404("project", meta.projectId, getProject(ctx.db, meta.projectId));
}

/**
 * `POST /artifacts`: a raw body (its `Content-Type` is the artifact's) or `multipart/form-data` (the
 * first file part; text fields before it may give `name` and `kind`). Refused before reading when
 * `Content-Length` says it is too big.
 */
export async function uploadArtifact(ctx: Ctx, request: Request, meta: ArtifactMeta, uploadedBy: string): Promise<ArtifactRow> {
  await checkRefs(ctx, meta);
  const length = declaredLength(ctx, request);
  if (!request.body) throw new AppError("validation_failed", "send the artifact's bytes as the request body", { field: "body" });
  const header = request.headers.get("Content-Type") ?? "application/octet-stream";
  let body = request.body;
  let contentType = header;
  let name = meta.name;
  let expectedBytes = length;
  if (/^multipart\/form-data\b/i.test(header)) {
    expectedBytes = undefined; // the form's length, not the file's (a cut form has no closing delimiter: caught there)
    const file = await firstFile(request.body, header);
    body = file.stream;
    contentType = file.contentType;
    name ??= file.fields.name ?? file.filename ?? undefined;
  }
  if (!name) throw new AppError("validation_failed", "give the artifact a name (?name=, or a file part's filename)", { field: "name" });
  if (name.length > MAX_NAME_LENGTH) throw new AppError("validation_failed", `name is longer than ${MAX_NAME_LENGTH}`, { field: "name" });
  const id = timeOrderedId();
  const stored = await storeStream(ctx.env.ARTIFACTS, r2KeyOf(id), body, {
    maxBytes: ctx.config.artifactMaxBytes,
    contentType,
    expectedBytes,
  });
  const nowMs = ctx.now();
  try {
    const row = await insertArtifact(ctx.db, {
      id,
      name,
      contentType,
      kind: meta.kind,
      status: "ready",
      size: stored.size,
      sha256: stored.sha256,
      r2Key: r2KeyOf(id),
      jobId: meta.jobId ?? null,
      taskId: meta.taskId ?? null,
      projectId: meta.projectId ?? null,
      uploadedBy,
      createdAt: nowMs,
      updatedAt: nowMs,
    });
    ctx.log.info("artifact stored", {
      artifact_id: id,
      size: stored.size,
      buffered_peak_bytes: stored.bufferedPeakBytes,
      kind: meta.kind,
      job_id: meta.jobId ?? null,
    });
    return row;
  } catch (err) {
    await ctx.env.ARTIFACTS.delete(r2KeyOf(id)).catch(() => {}); // no bytes without their row
    throw err;
  }
}

/** The body's declared length (refused at once past the limit), to check the bytes against. */
function declaredLength(ctx: Ctx, request: Request): number | undefined {
  const header = request.headers.get("Content-Length");
  if (header === null || !/^\d+$/.test(header)) return undefined;
  const max = ctx.config.artifactMaxBytes;
  if (Number(header) > max) throw new AppError("payload_too_large", `artifacts are limited to ${max} bytes`, { max_bytes: max });
  return Number(header);
}

/** `POST /tasks/{id}/artifacts`: a pending artifact of the task's job, and the one URL that may fill it. */
export async function startTaskUpload(
  ctx: Ctx,
  task: TaskRow,
  req: { name: string; content_type: string; kind: ArtifactKind },
  botId: string,
): Promise<{ artifact: ArtifactRow; upload: SignedUrl }> {
  if (!isHeld(task.status)) {
    throw new AppError("invalid_transition", `task ${task.id} is ${task.status}: uploads are for a task being run`, {
      task_id: task.id,
      status: task.status,
    });
  }
  const id = timeOrderedId();
  const nowMs = ctx.now();
  const projectId = task.jobId ? ((await getJob(ctx.db, task.jobId))?.projectId ?? null) : null;
  const artifact = await insertArtifact(ctx.db, {
    id,
    name: req.name,
    contentType: req.content_type,
    kind: req.kind,
    status: "pending",
    r2Key: r2KeyOf(id),
    jobId: task.jobId,
    taskId: task.id,
    projectId,
    uploadedBy: botId,
    createdAt: nowMs,
    updatedAt: nowMs,
    uploadExpiresAt: nowMs + ctx.config.artifactUrlTtlMs,
  });
  return { artifact, upload: await signUrl(ctx, "PUT", id) };
}

/** The signed PUT: the bytes of a pending artifact. A screenshot of a job's step is announced in the job's stream. */
export async function receiveUpload(ctx: Ctx, artifact: ArtifactRow, request: Request): Promise<ArtifactRow> {
  if (artifact.status !== "pending") {
    throw new AppError("invalid_transition", `artifact ${artifact.id} is already stored`, {
      artifact_id: artifact.id,
      status: artifact.status,
    });
  }
  const expectedBytes = declaredLength(ctx, request);
  if (!request.body) throw new AppError("validation_failed", "send the artifact's bytes as the request body", { field: "body" });
  const stored = await storeStream(ctx.env.ARTIFACTS, artifact.r2Key, request.body, {
    maxBytes: ctx.config.artifactMaxBytes,
    contentType: artifact.contentType,
    expectedBytes,
  });
  const ready = await markArtifactReady(ctx.db, artifact.id, stored, ctx.now());
  if (!ready) throw new AppError("conflict", `artifact ${artifact.id} was stored by another upload`, { artifact_id: artifact.id });
  ctx.log.info("artifact uploaded", { artifact_id: artifact.id, size: stored.size, kind: artifact.kind, task_id: artifact.taskId });
  if (ready.kind === "screenshot" && ready.jobId) {
    await publish(ctx, streamName("job", ready.jobId), [
      {
        type: "screenshot",
        data: {
          artifact_id: ready.id,
          name: ready.name,
          content_type: ready.contentType,
          size: ready.size,
          task_id: ready.taskId,
          content_url: artifactContentPath(ready.id),
        },
      },
    ]);
  }
  return ready;
}

/** The content, whole or one range, with `ETag` (the SHA-256), `Content-Disposition` and `Accept-Ranges`. */
export async function serveContent(ctx: Ctx, artifact: ArtifactRow, request: Request): Promise<Response> {
  if (artifact.status !== "ready" || artifact.size === null) {
    throw new AppError("not_found", `artifact ${artifact.id} has no content yet`, { artifact_id: artifact.id });
  }
  const etag = `"${artifact.sha256}"`;
  const headers = new Headers({
    "Content-Type": artifact.contentType,
    ETag: etag,
    "Accept-Ranges": "bytes",
    "Content-Disposition": contentDisposition(artifact.contentType, artifact.name),
    "Cache-Control": "private, max-age=0, must-revalidate",
    "X-Content-Type-Options": "nosniff",
    // Served from the API's origin: whatever it is, it runs nothing there.
    "Content-Security-Policy": "sandbox; default-src 'none'",
  });
  if (request.headers.get("If-None-Match") === etag) return new Response(null, { status: 304, headers });
  const range =
    request.headers.get("If-Range") && request.headers.get("If-Range") !== etag
      ? { kind: "whole" as const }
      : parseRange(request.headers.get("Range"), artifact.size);
  if (range.kind === "unsatisfiable") {
    throw new AppError("range_not_satisfiable", `the range is outside the artifact's ${artifact.size} bytes`, { size: artifact.size });
  }
  const object = await ctx.env.ARTIFACTS.get(
    artifact.r2Key,
    range.kind === "part" ? { range: { offset: range.offset, length: range.length } } : {},
  );
  if (!object) {
    ctx.log.error("artifact bytes missing from R2", { artifact_id: artifact.id, r2_key: artifact.r2Key });
    throw new AppError("not_found", `artifact ${artifact.id} has no content`, { artifact_id: artifact.id });
  }
  if (range.kind === "part") {
    headers.set("Content-Range", `bytes ${range.offset}-${range.offset + range.length - 1}/${artifact.size}`);
    headers.set("Content-Length", String(range.length));
    return new Response(object.body, { status: 206, headers });
  }
  headers.set("Content-Length", String(artifact.size));
  return new Response(object.body, { status: 200, headers });
}

/** Bytes first, then the row: a failure in between leaves a row without bytes (served as 404), never bytes nobody can find. */
export async function removeArtifacts(ctx: Ctx, rows: ArtifactRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  await ctx.env.ARTIFACTS.delete(rows.map((r) => r.r2Key));
  await deleteArtifactRows(
    ctx.db,
    rows.map((r) => r.id),
  );
  return rows.length;
}

/** Retention: the artifacts of removed jobs and tasks, and uploads that never came, `limit` at a time. */
export async function removeExpiredArtifacts(ctx: Ctx, limit: number): Promise<number> {
  return removeArtifacts(ctx, await artifactsToRemove(ctx.db, ctx.now(), limit));
}

/** A job's inputs: every id must be a ready artifact (404 names the first that is not). */
export async function inputArtifacts(ctx: Ctx, ids: readonly string[]): Promise<InputArtifact[]> {
  const unique = [...new Set(ids)];
  const found = new Map((await readyArtifactsIn(ctx.db, unique)).map((a) => [a.id, a]));
  const missing = unique.find((id) => !found.has(id));
  if (missing) throw new AppError("artifact_not_found", `no stored artifact ${missing}`, { artifact_id: missing });
  return unique.map((id) => {
    const a = found.get(id)!;
    return { id: a.id, name: a.name, content_type: a.contentType, size: a.size ?? 0, sha256: a.sha256 ?? "" };
  });
}
