/**
 * A bot's task activity on the fleet stream (its current task, its finished attempts), for the
 * Status Center's fleet table. A bot finishing tasks back to back would otherwise put two events per
 * task on the one fleet stream, so changes are coalesced: the first after a quiet second goes out at
 * once, later ones within the second are merged and flushed by the bot object's alarm. The merged
 * state waits in the object's storage, so an eviction before the flush loses nothing.
 */
import type { BotTaskCounts } from "../db/task-writes";
import type { Ctx } from "../services/context";
import { publishFleet } from "../services/streams";
import type { AlarmSchedule } from "./alarm-schedule";
import { KeptValue } from "./kept-value";

/** The alarm schedule's entry for a pending flush. */
export const FLEET_ACTIVITY = "fleet_activity";
const PENDING_KEY = "fleet_activity_pending";
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
  private readonly pending: KeptValue<BotActivity | null>;

  constructor(
    storage: DurableObjectStorage,
    private readonly alarms: AlarmSchedule,
  ) {
    this.pending = new KeptValue<BotActivity | null>(storage, PENDING_KEY, () => null);
  }

  async note(ctx: Ctx, botId: string, change: ActivityChange): Promise<void> {
    const pending = await this.pending.get();
    const activity: BotActivity = { ...pending, current_task_id: change.currentTaskId };
    if (change.counts) Object.assign(activity, { tasks_completed: change.counts.completed, tasks_failed: change.counts.failed });
    const nowMs = Date.now();
    if (nowMs - this.publishedAtMs >= FLEET_ACTIVITY_INTERVAL_MS) {
      if (pending) await this.pending.set(null);
      await this.alarms.clear(FLEET_ACTIVITY);
      this.publish(ctx, botId, activity);
      return;
    }
    await this.pending.set(activity);
    if (!pending) await this.alarms.set(FLEET_ACTIVITY, this.publishedAtMs + FLEET_ACTIVITY_INTERVAL_MS);
  }

  /** The alarm's entry: what was merged since the last event. */
  async flush(ctx: Ctx, botId: string): Promise<void> {
    const pending = await this.pending.get();
    if (!pending) return;
    await this.pending.set(null);
    this.publish(ctx, botId, pending);
  }

  /** Storage was wiped (the bot was deleted). */
  forget(): void {
    this.pending.forget();
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
