/**
 * A bot's result written behind: kept in its object's storage, the bot told at once, D1 written after.
 *
 * One task at a time, a result's D1 write was half of D1's share of the round trip (each D1 call here
 * costs about 0.7 ms before it does anything). Kept here, the result is durable before the bot hears
 * of it (the object's output waits for the put), and its D1 write waits 2 ms at the group-commit writer
 * (services/context.ts says why), going with whatever arrives meanwhile. Only a bot whose last claim
 * found nothing writes behind: with a backlog its result's write also claims its next task, which it
 * waits for anyway, so the put would buy nothing (bot-work.ts and core's resultMayBeWrittenBehind decide).
 *
 * Until D1 has it, whoever reads or changes that task by id asks this object first (`settled`), and
 * the object's own deadline does too. A restart applies what was kept (the write is version-guarded,
 * so a result D1 already has is refused, not applied twice). The entry is deleted only alongside a
 * storage write the object makes anyway (the health window's save), so writing behind costs one put.
 */

const KEY = "kept_result";

export interface KeptEntry {
  taskId: string;
  result: unknown;
}

export class KeptResult {
  /** What storage holds (undefined: not read yet by this instance). */
  private entry: KeptEntry | null | undefined = undefined;
  /** D1 has the entry's result, or refused it for good: storage may forget it. */
  private applied = false;
  private pending: Promise<void> | null = null;
  /** The task of the last result this instance kept, written or not (memory only; see `keptFor`). */
  private lastTaskId: string | null = null;

  constructor(private readonly storage: DurableObjectStorage) {}

  /** What storage holds that D1 may not have yet (null: nothing). */
  async unapplied(): Promise<KeptEntry | null> {
    if (this.entry === undefined) this.entry = (await this.storage.get<KeptEntry>(KEY)) ?? null;
    return this.applied ? null : this.entry;
  }

  /** Keeps a result; the bot may be told once this returns. */
  async keep(entry: KeptEntry): Promise<void> {
    this.entry = entry;
    this.applied = false;
    this.lastTaskId = entry.taskId;
    await this.storage.put(KEY, entry);
  }

  /** The write of a kept result is on its way: `settled` waits for it. */
  async track(applying: Promise<void>): Promise<void> {
    const tracked = applying.finally(() => {
      if (this.pending === tracked) this.pending = null;
    });
    this.pending = tracked;
    await tracked;
  }

  /**
   * Whether this instance kept a result for the task, whether or not D1 has it by now: a reader that
   * read the task before the write landed, and asks after, must read again.
   */
  keptFor(taskId: string): boolean {
    return this.lastTaskId === taskId;
  }

  /** D1 has it (or refused it for good). */
  markApplied(taskId: string): void {
    if (this.entry?.taskId === taskId) this.applied = true;
  }

  /** Waits for a kept result's write on its way; true if there was one. */
  async settled(): Promise<boolean> {
    if (!this.pending) return false;
    await this.pending;
    return true;
  }

  /**
   * Forgets an applied entry: call it with no await between it and another storage write, so the
   * runtime commits both as one (it coalesces writes made in one turn). Null if there is nothing to forget.
   */
  forgetApplied(): Promise<boolean> | null {
    if (!this.entry || !this.applied) return null;
    this.entry = null;
    this.applied = false;
    return this.storage.delete(KEY);
  }

  /** The object's storage was wiped (the bot was deleted): storage is read again when next asked. */
  forget(): void {
    this.entry = undefined;
    this.applied = false;
    this.lastTaskId = null;
  }
}
