import { z } from "@hono/zod-openapi";
import { BOT_STATUSES } from "../core/bot-status";
import { IsoTime, JsonObject, PageQuery } from "./common";

const Capability = z.string().trim().min(1).max(64);

export const BotRegisterBody = z
  .object({
    name: z.string().trim().min(1).max(200).openapi({ example: "build-bot-01" }),
    capabilities: z
      .array(Capability)
      .max(50)
      .default([])
      .openapi({ example: ["python", "docker"] }),
    metadata: JsonObject.default({}),
  })
  .openapi("BotRegister");

export const BotSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    capabilities: z.array(z.string()),
    status: z.enum(BOT_STATUSES),
    metadata: JsonObject,
    connected: z.boolean(),
    held: z.boolean(),
    current_task_id: z.string().nullable(),
    tasks_completed: z.number().int().openapi({ description: "Attempts this bot completed." }),
    tasks_failed: z
      .number()
      .int()
      .openapi({ description: "Attempts this bot failed: its errors, its timeouts, its losses (cancelled ones count in neither)." }),
    success_rate: z
      .number()
      .nullable()
      .openapi({ description: "tasks_completed / (tasks_completed + tasks_failed); null before the first." }),
    health_score: z.number().min(0).max(1).openapi({
      description: "0-1 from the last 30 minutes: success rate, timeouts, run time against deadlines, reconnects (README: Bot health)",
    }),
    quarantined: z.boolean().openapi({ description: "Offered no work until its health recovers or an admin clears it" }),
    quarantined_at: IsoTime,
    last_heartbeat_at: IsoTime,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Bot");

export const BotRegisteredSchema = BotSchema.extend({
  token: z.string().openapi({ description: "The bot's own API token. Shown once; store it." }),
}).openapi("BotRegistered");

export const BotListQuery = PageQuery.extend({
  status: z.enum(BOT_STATUSES).optional(),
  capability: Capability.optional(),
});

export const AvailableQuery = z.object({ capability: Capability.optional() });
