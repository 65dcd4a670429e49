/**
 * A bot's frames as its object applies them: one at a time, in the order the
 * bot sent them (its start before its result), with a look at what is
 * waiting behind the frame being applied — so a start can see its result
 * already queued and ride in the result's write (bot-session.ts).
 */
import type { ParsedFrame } from "./bot-frames";

/** How long a start waits to see its result queued behind it (a turn of the event loop, then 2 ms). */
const RESULT_WAITS_MS = [0, 2];

export class BotInbox {
  private chain: Promise<void> = Promise.resolve();
  /** Frames received and not yet applied, in order. */
  private readonly queued: ParsedFrame[] = [];

  /** Applies `frame` after every frame before it; a failed one does not stop those after it. */
  push(frame: ParsedFrame, apply: (frame: ParsedFrame) => Promise<void>): Promise<void> {
    this.queued.push(frame);
    const applied = this.chain.then(() => {
      this.queued.shift();
      return apply(frame);
    });
    this.chain = applied.catch(() => undefined);
    return applied;
  }

  /** The bot's successful result for `taskId` is waiting behind the frame being applied. */
  resultQueued(taskId: string): boolean {
    return this.queued.some((f) => f.ok && f.msg.type === "task_complete" && f.msg.payload.task_id === taskId && f.msg.payload.success);
  }

  /**
   * Waits, at most RESULT_WAITS_MS, for the bot's result for `taskId` to be queued (a result sent in the
   * same breath as the start has arrived by then); true if it is.
   */
  async awaitResult(taskId: string): Promise<boolean> {
    for (const waitMs of RESULT_WAITS_MS) {
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      if (this.resultQueued(taskId)) return true;
    }
    return false;
  }
}
