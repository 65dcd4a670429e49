/**
 * A bot's task activity on the fleet stream (its current task, its finished attempts), for the
 * Status Center's fleet table. A bot finishing tasks back to back would otherwise put two events per
 * task on the one fleet stream, so changes are coalesced: the first after a quiet second goes out at
 * once, later ones within the second are merged and flushed by the bot object's write-behind timer. The merged
 * state waits in memory, not storage: a storage write per task would cost the bot's hot path more than
 * the event is worth. An object lost within that second (a crash or a deploy; a hibernating bot is not
 * evicted that soon) leaves the fleet table one change behind until the bot's next change, and a page
 * loaded meanwhile reads the bot from D1, which is current.
 */
import type { BotTaskCounts } from "../db/task-writes";
import type { Ctx } from "../services/context";
import { publishFleet } from "../services/streams";
import type { WriteBehind } from "./write-behind";

/** At most one activity event per bot per this interval; the last state always goes out. */
export const FLEET_ACTIVITY_INTERVAL_MS = 1000;

export interface ActivityChange {
  currentTaskId: string | null;
  /** Known when the change freed the bot (read back from the same D1 batch). */
  counts?: BotTaskCounts | null;
}

interface BotActivity {
  current_task_id: string | null;
  tasks_completed?: number;
  tasks_failed?: number;
}

export class FleetActivity {
  private publishedAtMs = 0;
  /** The merged change waiting for its flush (null: none). */
  private pending: BotActivity | null = null;

  constructor(private readonly writeBehind: WriteBehind) {}

  note(ctx: Ctx, botId: string, change: ActivityChange): void {
    const activity: BotActivity = { ...this.pending, current_task_id: change.currentTaskId };
    if (change.counts) Object.assign(activity, { tasks_completed: change.counts.completed, tasks_failed: change.counts.failed });
    if (Date.now() - this.publishedAtMs >= FLEET_ACTIVITY_INTERVAL_MS) {
      // A flush asked for by an earlier merge is not called off: it finds nothing pending.
      this.pending = null;
      this.publish(ctx, botId, activity);
      return;
    }
    const merging = this.pending !== null;
    this.pending = activity;
    if (!merging) this.flushAt();
  }

  /** The write-behind's flush: what was merged since the last event (not before its interval is over). */
  flush(ctx: Ctx, botId: string): void {
    const pending = this.pending;
    if (!pending) return;
    if (Date.now() - this.publishedAtMs < FLEET_ACTIVITY_INTERVAL_MS) {
      this.flushAt(); // early (for the health window): not before its own interval is over
      return;
    }
    this.pending = null;
    this.publish(ctx, botId, pending);
  }

  private flushAt(): void {
    this.writeBehind.schedule(this.publishedAtMs + FLEET_ACTIVITY_INTERVAL_MS);
  }

  /** The bot was deleted. */
  forget(): void {
    this.pending = null;
  }

  /** Not awaited: a dashboard's event must not delay the bot's next task (a failure is logged, the next change corrects it). */
  private publish(ctx: Ctx, botId: string, activity: BotActivity): void {
    this.publishedAtMs = Date.now();
    const status = activity.current_task_id ? "busy" : "online";
    publishFleet(ctx, { type: "bot", data: { bot_id: botId, status, ...activity } }).catch((err) =>
      ctx.log.warn("fleet activity event not published", { error: String(err) }),
    );
  }
}
