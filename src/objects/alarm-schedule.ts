/**
 * A Durable Object has one alarm. This keeps a stored schedule of named
 * deadlines and arms the alarm for the earliest (see core/schedule.ts).
 *
 * The alarm is armed lazily: it is moved only to wake earlier, never later, and it is not deleted when
 * the schedule empties. An alarm that rings early finds nothing due and re-arms for what is left (one
 * wake-up), which costs far less than re-arming it on every change: a bot running tasks back to back
 * moves its deadline with every task.
 */
import { nextWakeMs, type Schedule, takeDue } from "../core/schedule";

const SCHEDULE_KEY = "schedule";

export class AlarmSchedule {
  /**
   * The stored schedule as last read or written (this object is its only writer), and the alarm as
   * last armed: a change then costs one put at most, and the alarm is armed only when it must ring
   * earlier. Memory only; an object that starts afresh reads storage again.
   */
  private cached: Schedule | null = null;
  /** When the alarm is armed for; undefined: not known (nothing armed by this instance yet, or the alarm has just rung). */
  private armedAtMs: number | undefined = undefined;

  constructor(private readonly storage: DurableObjectStorage) {}

  async load(): Promise<Schedule> {
    this.cached ??= (await this.storage.get<Schedule>(SCHEDULE_KEY)) ?? {};
    return { ...this.cached };
  }

  private async save(schedule: Schedule): Promise<void> {
    this.cached = { ...schedule };
    await this.storage.put(SCHEDULE_KEY, schedule);
    await this.arm(schedule);
  }

  private async arm(schedule: Schedule): Promise<void> {
    const wake = nextWakeMs(schedule);
    if (wake === null) return; // an alarm left armed rings once, finds nothing, and is not armed again
    if (this.armedAtMs !== undefined && this.armedAtMs <= wake) return;
    await this.storage.setAlarm(wake);
    this.armedAtMs = wake;
  }

  async set(key: string, atMs: number): Promise<void> {
    const schedule = await this.load();
    if (schedule[key] === atMs) return;
    await this.save({ ...schedule, [key]: atMs });
  }

  /**
   * An entry for a check that re-reads the truth when it runs and re-sets itself if it is early (a
   * task's deadline): an entry already due earlier stays, and nothing is written.
   */
  async setNoLaterThan(key: string, atMs: number): Promise<void> {
    const schedule = await this.load();
    const known = schedule[key];
    if (known !== undefined && known <= atMs) return;
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
    if (due.length > 0) await this.save(remaining);
    else await this.arm(remaining); // rang early (see above): nothing to write, only the alarm to arm again
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
