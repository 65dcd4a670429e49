/**
 * The route shapes every resource repeats, declared once: a paginated list (a
 * JSON array, the next cursor in `Link` / `X-Next-Cursor`), one item by id,
 * and an operation on one item (`POST|DELETE /{id}/…`, with or without a JSON
 * body). Each registers its OpenAPI route, validates input through the
 * router's hook and answers 200; the resource supplies only what differs
 * (schemas, who may act, the work, the presentation).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { requireReader } from "../auth";
import { errorResponses, IdParam } from "../contracts/common";
import { type AppContext, type AppRouter, jsonBody, jsonResponse, setNextCursor } from "../http";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

export function resourceRoutes(router: AppRouter, tags: string[]) {
  return {
    /** `GET path?…query` → a page of items, newest first. Admins and viewers. */
    list<Q extends z.ZodObject>(spec: {
      path: string;
      summary: string;
      query: Q;
      item: z.ZodType;
      read: (c: AppContext, query: z.infer<Q>) => Promise<Page<unknown>>;
    }) {
      router.openapi(
        createRoute({
          method: "get",
          path: spec.path,
          tags,
          summary: spec.summary,
          request: { query: spec.query as z.ZodObject },
          responses: { 200: jsonResponse(z.array(spec.item), spec.summary), ...errorResponses(400, 401, 403) },
        }),
        async (c) => {
          requireReader(c);
          const { items, nextCursor } = await spec.read(c, (c.req.valid as (target: "query") => z.infer<Q>)("query"));
          setNextCursor(c, nextCursor);
          return c.json(items, 200);
        },
      );
    },

    /**
     * `GET path` with `{id}` → one item, or its 404. `read` loads it and checks
     * who may see it (admins and viewers; a bot only itself and its own task).
     */
    get(spec: { path: string; summary: string; item: z.ZodType; read: (c: AppContext, id: string) => Promise<unknown> }) {
      router.openapi(
        createRoute({
          method: "get",
          path: spec.path,
          tags,
          summary: spec.summary,
          request: { params: IdParam },
          responses: { 200: jsonResponse(spec.item, spec.summary), ...errorResponses(401, 403, 404) },
        }),
        async (c) => c.json(await spec.read(c, c.req.valid("param").id), 200),
      );
    },

    /**
     * `POST|DELETE path` with `{id}` → the item after the operation. `run`
     * checks who may act (it is the only place that knows), does the work and
     * presents the result; `errors` lists the refusals it can answer.
     */
    act<Body = undefined>(spec: {
      method: "post" | "delete";
      path: string;
      summary: string;
      body?: z.ZodType<Body>;
      item: z.ZodType;
      errors: number[];
      run: (c: AppContext, id: string, body: Body) => Promise<unknown>;
    }) {
      const bodySchema: z.ZodType | undefined = spec.body; // keeps the route's type non-generic, so params stay typed
      router.openapi(
        createRoute({
          method: spec.method,
          path: spec.path,
          tags,
          summary: spec.summary,
          request: { params: IdParam, ...(bodySchema ? jsonBody(bodySchema) : {}) },
          responses: { 200: jsonResponse(spec.item, spec.summary), ...errorResponses(...spec.errors) },
        }),
        async (c) => {
          const body = bodySchema ? (c.req.valid as (target: "json") => Body)("json") : (undefined as Body);
          return c.json(await spec.run(c, c.req.valid("param").id, body), 200);
        },
      );
    },
  };
}
