/** Helpers for integration tests: authenticated calls through the real Worker, real WebSockets. */
import { createExecutionContext, env, SELF, waitOnExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import { until } from "../../scripts/lib/wait";
import worker from "../../src/index";

export { overlappingAssignments } from "./protocol";

export const ADMIN_TOKEN = "test-admin-token-0123456789abcdef";
const BASE = "http://coordinator.test";

export interface CallOptions {
  token?: string | null;
  headers?: Record<string, string>;
  rawBody?: string;
  /**
   * Straight into the Worker's fetch handler instead of SELF.fetch, which gets slower with every request
   * the test pool has made (measured: 300 requests take 2.6 s, the next 300 16 s). For request-heavy tests
   * (the authorization matrix, fuzzing); not for WebSocket upgrades.
   */
  direct?: boolean;
}

/** One request through the Worker's own fetch handler, waiting for what it left running (waitUntil). */
export async function directFetch(request: Request): Promise<Response> {
  const ctx = createExecutionContext();
  const res = await worker.fetch(request, env, ctx);
  const body = await res.arrayBuffer();
  await waitOnExecutionContext(ctx);
  return new Response(body, { status: res.status, headers: res.headers });
}

export async function call(method: string, path: string, body?: unknown, opts: CallOptions = {}) {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload: string | undefined = opts.rawBody;
  if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
  const init = { method, headers, body: payload };
  const res = opts.direct ? await directFetch(new Request(`${BASE}${path}`, init)) : await SELF.fetch(`${BASE}${path}`, init);
  // Every response carries a request id (README); every call of every test checks it.
  expect(res.headers.get("X-Request-Id"), `${method} ${path}: X-Request-Id`).toBeTruthy();
  const text = await res.text();
  let json: any = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = text;
  }
  return { status: res.status, body: json, headers: res.headers };
}

export const get = (path: string, opts?: CallOptions) => call("GET", path, undefined, opts);
export const post = (path: string, body?: unknown, opts?: CallOptions) => call("POST", path, body, opts);
export const del = (path: string, opts?: CallOptions) => call("DELETE", path, undefined, opts);

/** Asserts the error envelope and returns it. */
export function expectError(res: { status: number; body: any }, status: number, code: string) {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body.error.code).toBe(code);
  expect(typeof res.body.error.message).toBe("string");
  expect(res.body.error.details).toBeTypeOf("object");
  return res.body.error;
}

let uniq = 0;
/** A capability no other test uses, so dispatch in one test never reaches another test's bots. */
export const uniqueCapability = (prefix = "cap") => `${prefix}-${Date.now().toString(36)}-${++uniq}`;

export async function registerBot(capabilities: string[] = [], name = "test-bot") {
  const res = await post("/api/v1/bots", { name, capabilities, metadata: { test: true } });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body as { id: string; token: string; status: string; capabilities: string[] };
}

export async function createTask(body: Record<string, unknown>) {
  const res = await post("/api/v1/tasks", body);
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/** Polls until `check` returns a truthy value; fails after `timeoutMs`. Bounded, never hangs. */
export const eventually = <T>(check: () => Promise<T | null | undefined | false>, timeoutMs = 5000, what = "condition"): Promise<T> =>
  until(what, timeoutMs, check, 50);

/**
 * A task assigned by hand to a bot that is online through REST heartbeats only (no socket): the bot
 * holds it and nothing else is offered to it. Returns the task as created.
 */
export async function taskHeldViaRest(bot: { id: string; token: string }, body: Record<string, unknown>) {
  await post(`/api/v1/bots/${bot.id}/heartbeat`, undefined, { token: bot.token });
  const task = await createTask(body);
  const assigned = await post(`/api/v1/tasks/${task.id}/assign`, { bot_id: bot.id });
  expect(assigned.status, JSON.stringify(assigned.body)).toBe(200);
  return task;
}

export async function taskStatus(id: string): Promise<any> {
  return (await get(`/api/v1/tasks/${id}`)).body;
}

/** A real WebSocket connection to the bot control endpoint, with a message inbox. */
export class BotSocket {
  readonly inbox: any[] = [];
  /** Every message received, in arrival order (never consumed): for checks of what came before what. */
  readonly log: any[] = [];
  private waiters: Array<() => void> = [];
  closed: { code: number; reason: string } | null = null;

  private constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => {
      const msg = JSON.parse(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer));
      this.inbox.push(msg);
      this.log.push(msg);
      for (const w of this.waiters.splice(0)) w();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(botId: string, token: string | null, via: "header" | "query" = "header"): Promise<BotSocket> {
    const res = await BotSocket.upgrade(botId, token, via);
    expect(res.status).toBe(101);
    const ws = res.webSocket!;
    ws.accept();
    return new BotSocket(ws);
  }

  static async upgrade(botId: string, token: string | null, via: "header" | "query" = "header"): Promise<Response> {
    const headers: Record<string, string> = { Upgrade: "websocket" };
    let url = `${BASE}/api/v1/ws/control?bot_id=${encodeURIComponent(botId)}`;
    if (token && via === "header") headers.Authorization = `Bearer ${token}`;
    if (token && via === "query") url += `&token=${encodeURIComponent(token)}`;
    return SELF.fetch(url, { headers });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === "string" ? msg : JSON.stringify(msg));
  }

  /** Next message of `type` not yet taken (removes it from the inbox). */
  async next(type: string, timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.inbox.findIndex((m) => m.type === type);
      if (i >= 0) return this.inbox.splice(i, 1)[0];
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no '${type}' message within ${timeoutMs}ms; inbox: ${JSON.stringify(this.inbox)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /**
   * Returns once everything the bot's object sent before now has arrived: it
   * sends a message the object must answer (progress for a task it does not
   * hold) and waits for that answer. So "nothing was assigned" can be asserted
   * after a positive event, not after a guessed sleep.
   */
  async sync(): Promise<void> {
    const probe = `sync-${crypto.randomUUID()}`;
    this.send({ type: "task_progress", payload: { task_id: probe, progress: 1 } });
    const deadline = Date.now() + 5000;
    while (!this.log.some((m) => m.type === "error" && m.payload?.details?.task_id === probe)) {
      if (Date.now() > deadline) throw new Error("the bot's object did not answer the sync probe");
      await new Promise((r) => setTimeout(r, 10));
    }
    const i = this.inbox.findIndex((m) => m.type === "error" && m.payload?.details?.task_id === probe);
    if (i >= 0) this.inbox.splice(i, 1);
  }

  async complete(taskId: string, result: unknown = { ok: true }, success = true): Promise<any> {
    this.send({ type: "task_complete", payload: { task_id: taskId, success, result } });
    return this.next("task_ack");
  }

  close(): void {
    try {
      this.ws.close(1000, "test done");
    } catch {
      /* already closed */
    }
  }
}

/** A watcher of an event stream (`/api/v1/ws/jobs/{id}` and the like): every message it got, in order. */
export class StreamSocket {
  readonly log: any[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: Array<() => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => {
      this.log.push(JSON.parse(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer)));
      for (const w of this.waiters.splice(0)) w();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** `path`: e.g. `/api/v1/ws/jobs/<id>?since=3`; the admin token in the header unless `token` says otherwise (null: none). */
  static async open(path: string, token: string | null = ADMIN_TOKEN): Promise<StreamSocket> {
    const res = await StreamSocket.upgrade(path, token);
    if (res.status !== 101) throw new Error(`${path}: expected 101, got ${res.status} ${await res.text()}`);
    const ws = res.webSocket!;
    ws.accept();
    return new StreamSocket(ws);
  }

  static upgrade(path: string, token: string | null = ADMIN_TOKEN): Promise<Response> {
    const headers: Record<string, string> = { Upgrade: "websocket" };
    if (token) headers.Authorization = `Bearer ${token}`;
    return SELF.fetch(`${BASE}${path}`, { headers });
  }

  /** Waits until some message satisfies `match`, and returns it. */
  async waitFor(what: string, match: (m: any) => boolean, timeoutMs = 5000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.log.find(match);
      if (found) return found;
      const left = deadline - Date.now();
      if (left <= 0 || this.closed)
        throw new Error(`no ${what} within ${timeoutMs}ms; got: ${JSON.stringify(this.log.map((m) => m.type))}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The log's events (the snapshot a watcher gets first is not one of them). */
  events(): any[] {
    return this.log.filter((m) => !m.data?.snapshot);
  }

  close(): void {
    try {
      this.ws.close(1000, "test done");
    } catch {
      /* already closed */
    }
  }
}
