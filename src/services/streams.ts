/**
 * Publishing to event streams. A publish follows the D1 write it reports (the
 * state is committed first), and a stream that cannot be reached never fails
 * the work that was already done: it is logged, and the resource's state in
 * D1 stays the truth a watcher can always read.
 */
import { FLEET_STREAM, type NewStreamEvent } from "../core/stream";
import { deleteStreamCopy } from "../db/cleanup";
import { eventStream } from "../objects/stubs";
import type { Ctx } from "./context";

export async function publish(ctx: Ctx, stream: string, events: NewStreamEvent[], state?: Record<string, unknown>): Promise<void> {
  if (events.length === 0 && !state) return;
  try {
    await eventStream(ctx.env, stream).publish(events, state);
  } catch (err) {
    ctx.log.warn("could not publish to a stream", { stream, types: events.map((e) => e.type), error: String(err) });
  }
}

/** The fleet stream: bots coming and going, job and deployment summaries, queue depth. */
export const publishFleet = (ctx: Ctx, event: NewStreamEvent) => publish(ctx, FLEET_STREAM, [event]);

/** The resource is gone: its watchers are closed and its log forgotten (a failure is logged, never thrown). */
export async function destroyStream(ctx: Ctx, stream: string): Promise<void> {
  try {
    await eventStream(ctx.env, stream).destroy();
    await deleteStreamCopy(ctx.db, stream);
  } catch (err) {
    ctx.log.warn("could not remove a stream", { stream, error: String(err) });
  }
}
