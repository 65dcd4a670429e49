import { z } from "@hono/zod-openapi";
import { PROJECT_STATUSES, PROJECT_TYPES } from "../core/project";
import { PageQuery } from "./common";

export const ProjectCreateBody = z
  .object({
    name: z.string().trim().min(1).max(200),
    domain: z
      .string()
      .trim()
      .min(1)
      .max(253)
      .regex(/^[A-Za-z0-9][A-Za-z0-9.-]*$/, "letters, digits, dots and dashes"),
    description: z.string().max(5000).nullish(),
    typeId: z
      .number()
      .int()
      .min(1)
      .max(PROJECT_TYPES.length)
      .openapi({ description: PROJECT_TYPES.map((t) => `${t.id}: ${t.name}`).join(", ") }),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .openapi("ProjectCreate");

export const ProjectSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    domain: z.string(),
    description: z.string().nullable(),
    typeId: z.number().int(),
    type: z.string(),
    status: z.enum(PROJECT_STATUSES),
    error: z.string().nullable(),
    project_path: z.string().openapi({ description: "The project's directory under its bot's projects directory" }),
    init_job_id: z.string().nullable().openapi({ description: "The initialization run (a job; its stream has the logs)" }),
    status_url: z.string(),
    websocket_url: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Project");

export const ProjectStatusSchema = z.object({ status: z.enum(PROJECT_STATUSES) }).openapi("ProjectStatus");

export const ProjectTypeSchema = z.object({ id: z.number().int(), name: z.string(), initialized: z.boolean() }).openapi("ProjectType");

export const ProjectListQuery = PageQuery.extend({
  status: z.enum(PROJECT_STATUSES).optional(),
  type_id: z.coerce.number().int().min(1).max(PROJECT_TYPES.length).optional(),
});
