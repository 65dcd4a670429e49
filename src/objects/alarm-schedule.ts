/**
 * A Durable Object has one alarm. This keeps a stored schedule of named
 * deadlines and arms the alarm for the earliest (see core/schedule.ts).
 */
import { nextWakeMs, type Schedule, takeDue } from "../core/schedule";

const SCHEDULE_KEY = "schedule";

export class AlarmSchedule {
  /**
   * The stored schedule as last read or written (this object is its only writer), and the alarm as
   * last armed: a set or clear on a bot's hot path then costs one put, and the alarm is re-armed only
   * when the earliest deadline moves. Memory only; an object that starts afresh reads storage again.
   */
  private cached: Schedule | null = null;
  /** undefined: not known (nothing armed by this instance yet, or the alarm has just fired). */
  private armedAtMs: number | null | undefined = undefined;

  constructor(private readonly storage: DurableObjectStorage) {}

  async load(): Promise<Schedule> {
    this.cached ??= (await this.storage.get<Schedule>(SCHEDULE_KEY)) ?? {};
    return { ...this.cached };
  }

  private async save(schedule: Schedule): Promise<void> {
    this.cached = { ...schedule };
    await this.storage.put(SCHEDULE_KEY, schedule);
    const wake = nextWakeMs(schedule);
    if (wake === this.armedAtMs) return;
    if (wake === null) await this.storage.deleteAlarm();
    else await this.storage.setAlarm(wake);
    this.armedAtMs = wake;
  }

  async set(key: string, atMs: number): Promise<void> {
    const schedule = await this.load();
    if (schedule[key] === atMs) return;
    await this.save({ ...schedule, [key]: atMs });
  }

  async clear(key: string): Promise<void> {
    const schedule = await this.load();
    if (!(key in schedule)) return;
    delete schedule[key];
    await this.save(schedule);
  }

  /** Removes and returns the entries due at `nowMs`; the alarm is re-armed for the rest. */
  async takeDue(nowMs: number): Promise<string[]> {
    // The alarm that is running is spent: whatever is left must be armed again, even at the same time.
    this.armedAtMs = undefined;
    const { due, remaining } = takeDue(await this.load(), nowMs);
    await this.save(remaining);
    return due;
  }

  /** Storage was wiped (the bot was deleted): nothing kept in memory holds any more. */
  forget(): void {
    this.cached = null;
    this.armedAtMs = undefined;
  }

  /** On start: re-arm if entries exist but the alarm was lost. */
  async rearm(): Promise<void> {
    const wake = nextWakeMs(await this.load());
    if (wake !== null && (await this.storage.getAlarm()) === null) await this.storage.setAlarm(wake);
  }
}
