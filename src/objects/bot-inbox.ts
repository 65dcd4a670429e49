/**
 * A bot's frames as its object applies them: one at a time, in the order the
 * bot sent them (its start before its result), with a look at what is
 * waiting behind the frame being applied — so a start can see its result
 * already queued and ride in the result's write (bot-session.ts).
 */
import type { ParsedFrame } from "./bot-frames";

/**
 * How long a start waits at most to see its result queued behind it. The wait ends the moment the result
 * arrives: a result sent in the same breath as the start is there within a turn or two of the event loop.
 */
const RESULT_WAIT_MS = 2;

const isResultFor = (f: ParsedFrame, taskId: string) =>
  f.ok && f.msg.type === "task_complete" && f.msg.payload.task_id === taskId && f.msg.payload.success;

export class BotInbox {
  private chain: Promise<void> = Promise.resolve();
  /** Frames received and not yet applied, in order. */
  private readonly queued: ParsedFrame[] = [];
  /** A start waiting for its result (awaitResult): told as soon as the result is pushed. */
  private resultWaiter: { taskId: string; settle: (queued: boolean) => void } | null = null;

  constructor(private readonly resultWaitMs = RESULT_WAIT_MS) {}

  /** Applies `frame` after every frame before it; a failed one does not stop those after it. */
  push(frame: ParsedFrame, apply: (frame: ParsedFrame) => Promise<void>): Promise<void> {
    this.queued.push(frame);
    if (this.resultWaiter && isResultFor(frame, this.resultWaiter.taskId)) this.resultWaiter.settle(true);
    const applied = this.chain.then(() => {
      this.queued.shift();
      return apply(frame);
    });
    this.chain = applied.catch(() => undefined);
    return applied;
  }

  /** The bot's successful result for `taskId` is waiting behind the frame being applied. */
  resultQueued(taskId: string): boolean {
    return this.queued.some((f) => isResultFor(f, taskId));
  }

  /**
   * True as soon as the bot's successful result for `taskId` is queued (now, or within the wait, RESULT_WAIT_MS);
   * false if it did not come in that time. One waiter at a time: frames are applied one at a time.
   */
  awaitResult(taskId: string): Promise<boolean> {
    if (this.resultQueued(taskId)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const settle = (queued: boolean) => {
        clearTimeout(timer);
        this.resultWaiter = null;
        resolve(queued);
      };
      const timer = setTimeout(() => settle(false), this.resultWaitMs);
      this.resultWaiter = { taskId, settle };
    });
  }
}
