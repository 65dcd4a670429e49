/**
 * A bot's health, kept by its object: the attempts it finished and the times
 * it connected over the last window (in the object's storage), the score
 * they make (core/health.ts), and the quarantine. D1 hears of it only when it
 * moves — the score by 0.05 or more, or the quarantine starting or ending
 * (with a `bot_quarantined` / `bot_recovered` event and a log line) — so a
 * bot whose health holds still costs nothing. While the bot is quarantined,
 * or its written score is low, the object's alarm looks again when the
 * window's oldest entry leaves it: that is how a bot offered no work recovers.
 */
import {
  type Attempt,
  DEFAULT_HEALTH_POLICY,
  type Health,
  type HealthHistory,
  type HealthPolicy,
  healthOf,
  nextChangeMs,
  quarantineAfter,
  withinWindow,
} from "../core/health";
import { writeBotHealth } from "../db/bots";
import type { Ctx } from "../services/context";
import { countMetric } from "../services/metrics";
import { publishFleet } from "../services/streams";
import type { AlarmSchedule } from "./alarm-schedule";
import { KeptValue } from "./kept-value";
import type { WriteBehind } from "./write-behind";

/** The alarm schedule's entry for the next look at the window. */
export const HEALTH_CHECK = "health";
/**
 * The window is written behind (write-behind.ts): an attempt changes it in memory, and storage takes it
 * this long after the first change since the last save, and no sooner than HISTORY_SAVE_INTERVAL_MS after
 * that save — a bot finishing a task every second or so costs one storage write per ten seconds, not one
 * per task (each was a tenth of the coordinator's CPU in the benchmark's profile, the whole window
 * serialized and written). An object lost before the write (a crash or a deploy) forgets at most those
 * seconds of attempts, in a window of thirty minutes; what they moved in D1 (the score, a quarantine) is
 * written at once, with the window.
 */
const HISTORY_SAVE_DELAY_MS = 1000;
const HISTORY_SAVE_INTERVAL_MS = 10_000;
const HISTORY_KEY = "health_history";
const WRITTEN_KEY = "health_written";
/** D1 is written when the score moved by this much since it was last written. */
const SCORE_WRITE_STEP = 0.05;
/** Below this written score the alarm keeps the score current as the window slides. */
const WATCH_BELOW = 0.95;

interface Written {
  score: number;
  quarantinedAtMs: number | null;
}

export type HealthChange = "quarantined" | "recovered" | null;

export class BotHealth {
  /** What was last written to D1 (only this class writes it). */
  private readonly writtenKept: KeptValue<Written>;
  /** The window of attempts and connects. */
  private readonly history: KeptValue<HealthHistory>;
  /** When storage last took the window, and when it is to take the changes since (null: none waiting). Memory only. */
  private savedAtMs = Number.NEGATIVE_INFINITY;
  private saveDueAtMs: number | null = null;

  constructor(
    storage: DurableObjectStorage,
    private readonly alarms: AlarmSchedule,
    private readonly writeBehind: WriteBehind,
    private readonly policy: HealthPolicy = DEFAULT_HEALTH_POLICY,
  ) {
    this.writtenKept = new KeptValue<Written>(storage, WRITTEN_KEY, () => ({ score: 1, quarantinedAtMs: null }));
    this.history = new KeptValue<HealthHistory>(storage, HISTORY_KEY, () => ({ attempts: [], connectsAtMs: [] }));
  }

  async recordAttempt(ctx: Ctx, botId: string, attempt: Attempt): Promise<HealthChange> {
    return (await this.update(ctx, botId, (h) => ({ ...h, attempts: [...h.attempts, attempt] }))).flip;
  }

  /**
   * A connect, before its D1 write: returns the score to write with it (in
   * the same statement, so a reconnect costs no round trip of its own), or
   * null when it has not moved. A connect that starts or ends a quarantine
   * (rare: the window slid meanwhile) is written on its own, with its event.
   */
  connect(ctx: Ctx, botId: string): Promise<number | null> {
    return this.update(ctx, botId, (h) => ({ ...h, connectsAtMs: [...h.connectsAtMs, ctx.now()] }), { deferScore: true }).then(
      (r) => r.deferredScore,
    );
  }

  /** The alarm: the window slid. */
  async reevaluate(ctx: Ctx, botId: string): Promise<HealthChange> {
    return (await this.update(ctx, botId, (h) => h)).flip;
  }

  /** An admin cleared the bot: a fresh window, no quarantine. */
  async clear(ctx: Ctx, botId: string): Promise<void> {
    const before = await this.written();
    this.history.setLater({ attempts: [], connectsAtMs: [] });
    await this.saveHistory();
    const health = healthOf({ attempts: [], connectsAtMs: [] }, ctx.now(), this.policy);
    await this.write(ctx, botId, health, null, before.quarantinedAtMs !== null ? "cleared" : null);
    await this.alarms.clear(HEALTH_CHECK);
  }

  /**
   * The write-behind's flush: the window as memory has it goes to storage, once its save is due.
   * `alongside` makes another storage write in the same turn, so the runtime commits both as one.
   */
  async persist(alongside?: () => Promise<unknown> | null): Promise<void> {
    if (this.saveDueAtMs === null) return;
    // (the flush also runs for the fleet activity's sake, which may come sooner)
    if (Date.now() < this.saveDueAtMs) return this.writeBehind.schedule(this.saveDueAtMs);
    await this.saveHistory(alongside);
  }

  private async saveHistory(alongside?: () => Promise<unknown> | null): Promise<void> {
    this.saveDueAtMs = null;
    this.savedAtMs = Date.now();
    const other = alongside?.() ?? null;
    await this.history.persist();
    await other;
  }

  /** The object's storage was wiped (the bot was deleted). */
  forget(): void {
    this.writtenKept.forget();
    this.history.forget();
    this.saveDueAtMs = null;
  }

  async isQuarantined(): Promise<boolean> {
    return (await this.written()).quarantinedAtMs !== null;
  }

  private written(): Promise<Written> {
    return this.writtenKept.get();
  }

  private remember(written: Written): Promise<void> {
    return this.writtenKept.set(written);
  }

  private async update(
    ctx: Ctx,
    botId: string,
    change: (h: HealthHistory) => HealthHistory,
    opts: { deferScore?: boolean } = {},
  ): Promise<{ flip: HealthChange; deferredScore: number | null }> {
    const nowMs = ctx.now();
    const history = withinWindow(change(await this.history.get()), nowMs, this.policy);
    this.history.setLater(history);
    const health = healthOf(history, nowMs, this.policy);
    const before = await this.written();
    const wasQuarantined = before.quarantinedAtMs !== null;
    const quarantined = quarantineAfter(wasQuarantined, health, this.policy);
    const flip: HealthChange = quarantined === wasQuarantined ? null : quarantined ? "quarantined" : "recovered";
    const moved = flip !== null || Math.abs(health.score - before.score) >= SCORE_WRITE_STEP;
    let deferredScore: number | null = null;
    if (moved && !flip && opts.deferScore) {
      deferredScore = health.score; // the caller writes it (see connect)
      await this.remember({ score: health.score, quarantinedAtMs: before.quarantinedAtMs });
    } else if (moved) {
      await this.write(ctx, botId, health, quarantined ? (before.quarantinedAtMs ?? nowMs) : null, flip);
    }
    // What D1 was just told is stored with the window it came from; otherwise the window waits for the write-behind.
    if (moved) await this.saveHistory();
    else {
      this.saveDueAtMs ??= Math.max(nowMs + HISTORY_SAVE_DELAY_MS, this.savedAtMs + HISTORY_SAVE_INTERVAL_MS);
      this.writeBehind.schedule(this.saveDueAtMs);
    }
    const watchedScore = moved ? health.score : before.score;
    const next = quarantined || watchedScore < WATCH_BELOW ? nextChangeMs(history, this.policy) : null;
    if (next === null) await this.alarms.clear(HEALTH_CHECK);
    else await this.alarms.set(HEALTH_CHECK, next);
    return { flip, deferredScore };
  }

  private async write(
    ctx: Ctx,
    botId: string,
    health: Health,
    quarantinedAtMs: number | null,
    event: HealthChange | "cleared",
  ): Promise<void> {
    const nowMs = ctx.now();
    const data = {
      health_score: health.score,
      attempts: health.attempts,
      completed: health.completed,
      timeouts: health.timeouts,
      reconnects: health.reconnects,
      mean_run_ms: health.meanRunMs === null ? null : Math.round(health.meanRunMs),
    };
    const type =
      event === "quarantined"
        ? "bot_quarantined"
        : event === "recovered"
          ? "bot_recovered"
          : event === "cleared"
            ? "bot_quarantine_cleared"
            : null;
    await writeBotHealth(ctx.db, botId, { score: health.score, quarantinedAtMs }, type ? { type, data } : null, nowMs);
    await this.remember({ score: health.score, quarantinedAtMs });
    if (!type) return;
    if (event === "quarantined") {
      countMetric("clawbot_bot_quarantines_total");
      ctx.log.warn("bot quarantined: its health is below the threshold; it is offered no work until it recovers", {
        ...data,
        threshold: this.policy.quarantineBelow,
      });
    } else ctx.log.info(event === "cleared" ? "bot quarantine cleared by an admin" : "bot recovered from quarantine", data);
    await publishFleet(ctx, { type: "bot_health", data: { bot_id: botId, quarantined: quarantinedAtMs !== null, ...data } });
  }
}
