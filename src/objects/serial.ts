/**
 * Work that must not interleave inside one Durable Object (an alarm step and
 * an RPC that both read, decide and write): each runs after everything queued
 * before it. A failure is its caller's alone; the queue goes on.
 */
export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(work: () => Promise<T>): Promise<T> {
    const next = this.tail.then(work, work);
    this.tail = next.catch(() => undefined);
    return next;
  }
}
