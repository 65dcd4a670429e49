/**
 * A Durable Object has one alarm. This keeps a stored schedule of named
 * deadlines and arms the alarm for the earliest (see core/schedule.ts).
 */
import { nextWakeMs, type Schedule, takeDue } from "../core/schedule";

const SCHEDULE_KEY = "schedule";

export class AlarmSchedule {
  constructor(private readonly storage: DurableObjectStorage) {}

  async load(): Promise<Schedule> {
    return (await this.storage.get<Schedule>(SCHEDULE_KEY)) ?? {};
  }

  private async save(schedule: Schedule): Promise<void> {
    await this.storage.put(SCHEDULE_KEY, schedule);
    const wake = nextWakeMs(schedule);
    if (wake === null) await this.storage.deleteAlarm();
    else await this.storage.setAlarm(wake);
  }

  async set(key: string, atMs: number): Promise<void> {
    await this.save({ ...(await this.load()), [key]: atMs });
  }

  async clear(key: string): Promise<void> {
    const schedule = await this.load();
    if (!(key in schedule)) return;
    delete schedule[key];
    await this.save(schedule);
  }

  /** Removes and returns the entries due at `nowMs`; the alarm is re-armed for the rest. */
  async takeDue(nowMs: number): Promise<string[]> {
    const { due, remaining } = takeDue(await this.load(), nowMs);
    await this.save(remaining);
    return due;
  }

  /** On start: re-arm if entries exist but the alarm was lost. */
  async rearm(): Promise<void> {
    const wake = nextWakeMs(await this.load());
    if (wake !== null && (await this.storage.getAlarm()) === null) await this.storage.setAlarm(wake);
  }
}
