/**
 * The route shapes every resource repeats, declared once: a paginated list (a
 * JSON array, the next cursor in `Link` / `X-Next-Cursor`), one item by id, an
 * operation on one item (`POST|DELETE /{id}/…`, with or without a JSON body)
 * and the admin's delete. Each registers its OpenAPI route, validates input
 * through the router's hook and answers 200; the resource supplies only what
 * differs (schemas, who may act, the work, the presentation).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { requireAdmin, requireReader } from "../auth";
import { DeletedSchema, errorResponses, IdParam } from "../contracts/common";
import { type AppContext, type AppRouter, jsonBody, jsonResponse, setNextCursor } from "../http";

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** What differs between two routes of one shape. */
interface RouteSpec {
  method: "get" | "post" | "delete";
  path: string;
  summary: string;
  query?: z.ZodObject;
  params?: boolean;
  body?: z.ZodType;
  item: z.ZodType;
  errors: number[];
  /** 202: the operation started long work (the answer carries `status_url`, also sent as `Location`). */
  accepted?: boolean;
}

export function resourceRoutes(router: AppRouter, tags: string[]) {
  /** Registers one route; `answer` gets the validated input and returns the 200 body. */
  const register = (spec: RouteSpec, answer: (c: AppContext, input: { query: unknown; id: string; body: unknown }) => Promise<unknown>) => {
    const request = {
      ...(spec.query ? { query: spec.query } : {}),
      ...(spec.params ? { params: IdParam } : {}),
      ...(spec.body ? jsonBody(spec.body) : {}),
    };
    const route = createRoute({
      method: spec.method,
      path: spec.path,
      tags,
      summary: spec.summary,
      request,
      // (a 202 route is declared as such; typed as 200 because hono cannot follow a computed status)
      responses: { [spec.accepted ? 202 : 200]: jsonResponse(spec.item, spec.summary), ...errorResponses(...spec.errors) } as {
        200: ReturnType<typeof jsonResponse<z.ZodType>>;
      },
    });
    router.openapi(route, async (c) => {
      // The router's hook has validated each declared part; the shape-specific callers know their types.
      const valid = c.req.valid.bind(c.req) as (target: "query" | "param" | "json") => unknown;
      const input = {
        query: spec.query ? valid("query") : undefined,
        id: spec.params ? (valid("param") as { id: string }).id : "",
        body: spec.body ? valid("json") : undefined,
      };
      const body = await answer(c, input);
      const statusUrl = spec.accepted ? (body as { status_url?: string }).status_url : undefined;
      if (statusUrl) c.header("Location", statusUrl);
      return c.json(body as never, (spec.accepted ? 202 : 200) as 200);
    });
  };

  return {
    /** `GET path?…query` → a page of items, newest first. Admins and viewers. */
    list<Q extends z.ZodObject>(spec: {
      path: string;
      summary: string;
      query: Q;
      item: z.ZodType;
      read: (c: AppContext, query: z.infer<Q>) => Promise<Page<unknown>>;
    }) {
      const { path, summary, query } = spec;
      register({ method: "get", path, summary, query, item: z.array(spec.item), errors: [400, 401, 403] }, async (c, input) => {
        requireReader(c);
        const { items, nextCursor } = await spec.read(c, input.query as z.infer<Q>);
        setNextCursor(c, nextCursor);
        return items;
      });
    },

    /**
     * `GET path` with `{id}` → one item, or its 404. `read` loads it and checks
     * who may see it (admins and viewers; a bot only itself and its own task).
     */
    get(spec: { path: string; summary: string; item: z.ZodType; read: (c: AppContext, id: string) => Promise<unknown> }) {
      const { path, summary, item } = spec;
      register({ method: "get", path, summary, params: true, item, errors: [401, 403, 404] }, (c, input) => spec.read(c, input.id));
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
      accepted?: boolean;
      run: (c: AppContext, id: string, body: Body) => Promise<unknown>;
    }) {
      const { method, path, summary, body, item, errors, accepted } = spec;
      register({ method, path, summary, params: true, body, item, errors, accepted }, (c, input) =>
        spec.run(c, input.id, input.body as Body),
      );
    },

    /** `DELETE /{id}` → `{id, deleted: true}`. Admins only; `run` loads (404) and removes. */
    remove(spec: { summary: string; errors?: number[]; run: (c: AppContext, id: string) => Promise<void> }) {
      const errors = spec.errors ?? [401, 403, 404];
      register({ method: "delete", path: "/{id}", summary: spec.summary, params: true, item: DeletedSchema, errors }, async (c, { id }) => {
        requireAdmin(c);
        await spec.run(c, id);
        return { id, deleted: true };
      });
    },
  };
}
