/**
 * What an object keeps in memory and writes or publishes a little later (a bot's health window, its
 * fleet activity merge): one timer for all of it, at the earliest time any of it asked for.
 *
 * A timer, not an entry in the alarm's schedule: what it flushes lives in memory and dies with the
 * instance, so a durable wake-up would keep nothing worth keeping, and arming the alarm for it would be
 * a storage write on the bot's hot path (its output waits for it). The runtime does not hibernate an
 * object with a timer pending, so the flush runs before the memory could go; a crash or a deploy
 * within that second loses it, which each user documents.
 */
export class WriteBehind {
  private timer: ReturnType<typeof setTimeout> | null = null;
  private atMs = Number.POSITIVE_INFINITY;

  constructor(
    private readonly flush: () => Promise<void>,
    private readonly onError: (err: unknown) => void,
  ) {}

  /** The flush runs no later than `atMs` (an earlier one already asked for stands). */
  schedule(atMs: number): void {
    if (this.timer !== null && this.atMs <= atMs) return;
    if (this.timer !== null) clearTimeout(this.timer);
    this.atMs = atMs;
    this.timer = setTimeout(() => this.run(), Math.max(0, atMs - Date.now()));
  }

  /** Nothing is to be flushed any more (the bot was deleted). */
  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.unschedule();
  }

  private run(): void {
    this.unschedule();
    this.flush().catch(this.onError);
  }

  private unschedule(): void {
    this.timer = null;
    this.atMs = Number.POSITIVE_INFINITY;
  }
}
