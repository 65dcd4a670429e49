import { AppError } from "../errors";
import { type Ctx, createCtx } from "../services/context";
import { flushMetrics } from "../services/metrics";

/**
 * Work that must not interleave inside one Durable Object (an alarm step and
 * an RPC that both read, decide and write): each runs after everything queued
 * before it. A failure is its caller's alone; the queue goes on.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.tail.then(work, work);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/** Who runs the work: the object's name (null when it was addressed without one) and how its log lines say so. */
export interface SerialOwner {
  name: string | null;
  /** The log field the name goes in (`schedule_id`, `deployment_id`). */
  idField: string;
  component: string;
  /** What kind of object, for the error when it has no name. */
  kind: string;
}

/**
 * Runs `work` on `queue` with a context whose log lines carry the object's
 * name (and a request id), reading the clock `nowMs` when given; what the work
 * counted goes to the metrics store after it (at most once a second; never throws).
 */
export function runSerialized<T>(
  queue: SerialQueue,
  env: Env,
  owner: SerialOwner,
  work: (ctx: Ctx, id: string) => Promise<T>,
  nowMs: number | null = null,
): Promise<T> {
  return queue.run(async () => {
    const id = owner.name;
    if (!id) throw new AppError("internal_error", `${owner.kind} addressed without a name`);
    const ctx = createCtx(env, { [owner.idField]: id, component: owner.component, request_id: crypto.randomUUID() });
    if (nowMs !== null) ctx.now = () => nowMs;
    try {
      return await work(ctx, id);
    } finally {
      await flushMetrics(ctx);
    }
  });
}
