import { z } from "@hono/zod-openapi";

export const IdParam = z.object({
  id: z
    .string()
    .min(1)
    .max(100)
    .openapi({ param: { name: "id", in: "path" }, example: "0b6f4c1e-2f7a-4a53-9e0e-6c9a0f3d7b21" }),
});

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: "task_not_found" }),
      message: z.string(),
      details: z.record(z.string(), z.unknown()),
      request_id: z.string().optional(),
    }),
  })
  .openapi("Error");

export const PageQuery = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50).openapi({ description: "Page size (1-200, default 50)" }),
  cursor: z.string().max(200).optional().openapi({ description: "Opaque cursor from the previous page's X-Next-Cursor / Link header" }),
});

/** Any JSON value (task payloads and results are free-form). */
export const JsonValue = z.unknown().openapi({ type: "object", description: "Any JSON value" });
export const JsonObject = z.record(z.string(), z.unknown()).openapi({ type: "object" });

export const IsoTime = z.string().nullable().openapi({ example: "2026-11-23T12:00:00.000Z" });

export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((s) => [s, { description: ERROR_DESCRIPTIONS[s] ?? "Error", content: { "application/json": { schema: ErrorSchema } } }]),
  );

const ERROR_DESCRIPTIONS: Record<number, string> = {
  400: "Invalid input",
  401: "Missing or invalid token",
  403: "Token not allowed to do this",
  404: "Not found",
  409: "Conflict (illegal transition, busy bot, reused idempotency key)",
  413: "Body larger than 256 KiB",
  503: "A dependency failed; nothing was lost, try again",
};

export const DeletedSchema = z.object({ id: z.string(), deleted: z.boolean() }).openapi("Deleted");
