import { z } from "@hono/zod-openapi";
import { DEPLOYMENT_STAGES, DEPLOYMENT_STATUSES } from "../core/deployment-machine";
import { PageQuery } from "./common";

export const DeploymentCreateBody = z
  .object({
    name: z
      .string()
      .trim()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9][A-Za-z0-9 ._-]*$/, "letters, digits, space, . _ -"),
    provider: z.enum(["local", "hetzner", "ovh"]).optional().openapi({ description: "Defaults to the coordinator's VPS_PROVIDER" }),
    region: z.string().trim().min(1).max(50).default("fsn1"),
    plan: z.string().trim().min(1).max(100).default("cx22"),
    idempotency_key: z.string().min(1).max(200).optional(),
  })
  .openapi("DeploymentCreate");

export const DeploymentSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    provider: z.string(),
    region: z.string(),
    plan: z.string(),
    status: z.enum(DEPLOYMENT_STATUSES),
    stage: z.enum(DEPLOYMENT_STAGES).nullable().openapi({ description: "Last completed stage" }),
    next_stage: z.enum(DEPLOYMENT_STAGES).nullable(),
    error: z.string().nullable(),
    vps: z.object({
      order_id: z.string().nullable(),
      service_id: z.string().nullable(),
      ip: z.string().nullable(),
      ssh_port: z.number().int(),
      host_key_sha256: z.string().nullable(),
    }),
    bot_id: z.string().nullable(),
    bot_online: z.boolean(),
    status_url: z.string(),
    websocket_url: z.string().openapi({ description: "Its live event stream (stages and log lines)" }),
    created_at: z.string(),
    updated_at: z.string(),
    last_progress_at: z.string(),
    finished_at: z.string().nullable(),
  })
  .openapi("Deployment");

export const DeploymentListQuery = PageQuery.extend({ status: z.enum(DEPLOYMENT_STATUSES).optional() });

export const DeploymentLogsQuery = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  after: z.coerce.number().int().min(0).default(0).openapi({ description: "Return entries after this id (the last one you have)" }),
});

export const DeploymentLogEntry = z
  .object({
    id: z.number().int(),
    level: z.string(),
    type: z.string(),
    stage: z.string().nullable(),
    message: z.string(),
    created_at: z.string(),
  })
  .openapi("DeploymentLogEntry");

export const CallbackBody = z.object({ event: z.enum(["progress", "complete", "error"]), message: z.string().max(1000).default("") });
