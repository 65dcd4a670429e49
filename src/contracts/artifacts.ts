import { z } from "@hono/zod-openapi";
import { ARTIFACT_KINDS, ARTIFACT_STATUSES } from "../core/artifact";
import { PageQuery } from "./common";

const Id = z.string().min(1).max(100);
const Name = z.string().trim().min(1).max(255);
const Kind = z.enum(ARTIFACT_KINDS);
const ContentType = z
  .string()
  .trim()
  .min(3)
  .max(200)
  .regex(/^[\w.+-]+\/[\w.+-]+(\s*;.*)?$/, "a media type such as image/png");

export const ArtifactUploadQuery = z.object({
  name: Name.optional().openapi({ description: "The file's name (a multipart file part's filename otherwise)" }),
  kind: Kind.default("file"),
  job_id: Id.optional(),
  task_id: Id.optional(),
  project_id: Id.optional(),
});

export const ArtifactListQuery = PageQuery.extend({
  job_id: Id.optional(),
  task_id: Id.optional(),
  project_id: Id.optional(),
  kind: Kind.optional(),
});

export const SignedQuery = z.object({
  expires: z.string().max(20).optional().openapi({ description: "For a signed URL: when it expires (ms since the epoch)" }),
  signature: z.string().max(128).optional().openapi({ description: "For a signed URL: its HMAC-SHA256" }),
});

export const TaskUploadBody = z
  .object({ name: Name, content_type: ContentType.default("application/octet-stream"), kind: Kind.default("file") })
  .openapi("TaskUpload");

export const ArtifactSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    content_type: z.string(),
    kind: z.enum(ARTIFACT_KINDS),
    status: z.enum(ARTIFACT_STATUSES),
    size: z.number().int().nullable(),
    sha256: z.string().nullable().openapi({ description: "Hex SHA-256 of the content (also its ETag)" }),
    job_id: z.string().nullable(),
    task_id: z.string().nullable(),
    project_id: z.string().nullable(),
    uploaded_by: z.string(),
    content_url: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Artifact");

const SignedUrlSchema = z.object({ url: z.string(), method: z.enum(["GET", "PUT"]), expires_at: z.string() });

export const TaskUploadSchema = z
  .object({
    artifact: ArtifactSchema,
    upload: SignedUrlSchema.openapi({ description: "PUT the bytes here (no token needed), once, before it expires" }),
  })
  .openapi("TaskUploadStarted");

/** A raw body of any type, or multipart/form-data (declared so the router validates neither: uploads stream). */
export const binaryBody = (description: string) => ({
  body: { required: true, content: { "*/*": { schema: z.string().openapi({ format: "binary" }) } }, description },
});

export const binaryResponse = (description: string) => ({
  description,
  content: { "*/*": { schema: z.string().openapi({ format: "binary" }) } },
});
