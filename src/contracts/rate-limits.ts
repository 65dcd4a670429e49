import { z } from "@hono/zod-openapi";

const RequestsPerSecond = z.number().positive().max(10_000).nullable().default(null);
const Burst = z.number().int().min(1).max(100_000).nullable().default(null);
const TasksPerMinute = z.number().int().min(1).max(1_000_000).nullable().default(null);

export const TokenLimitsBody = z
  .object({
    requests_per_second: RequestsPerSecond.openapi({ description: "Sustained API requests per second (null: none)" }),
    burst: Burst.openapi({ description: "Requests allowed at once above the rate (default: one second's worth)" }),
    tasks_per_minute: TasksPerMinute.openapi({ description: "Tasks this token may create per minute (null: none)" }),
  })
  .strict()
  .openapi("TokenLimits");

export const CapabilityLimitsBody = z
  .object({
    tasks_per_minute: TasksPerMinute.openapi({ description: "Tasks of this capability created per minute, by every client (null: none)" }),
    max_running: z
      .number()
      .int()
      .min(0)
      .max(100_000)
      .nullable()
      .default(null)
      .openapi({ description: "Tasks of this capability held by bots at once (0 stops its dispatch; null: none)" }),
  })
  .strict()
  .openapi("CapabilityLimits");

export const CapabilityParam = z.object({
  capability: z
    .string()
    .trim()
    .min(1)
    .max(64)
    .openapi({ param: { name: "capability", in: "path" }, example: "python" }),
});

const Limit = z.object({
  scope: z.enum(["token", "capability"]),
  subject: z.string().openapi({ description: "The token's id, or the capability" }),
  requests_per_second: z.number().nullable(),
  burst: z.number().int().nullable(),
  tasks_per_minute: z.number().int().nullable(),
  max_running: z.number().int().nullable(),
  updated_at: z.string(),
});
export const RateLimitSchema = Limit.openapi("RateLimit");

export const RateLimitListSchema = z
  .object({
    defaults: z
      .object({ requests_per_second: z.number().nullable(), burst: z.number().nullable(), tasks_per_minute: z.number().nullable() })
      .openapi({ description: "From the variables: what limits a token without its own row" }),
    limits: z.array(RateLimitSchema),
  })
  .openapi("RateLimits");
