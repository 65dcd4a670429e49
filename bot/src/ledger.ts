/**
 * What a bot has finished, kept until the coordinator acknowledges it.
 *
 * A result is the one thing a bot must not lose: the work behind it may have
 * taken hours or cost money. Each outcome stays here, unacknowledged, until a
 * `task_ack` for it arrives, and is sent again on every reconnect. Finished
 * tasks are remembered (the most recent `maxFinished`) so that an assignment
 * pushed again after a reconnect is answered with the kept outcome instead of
 * running the work a second time. With a state file, all of it survives a
 * restart of the bot process too (written atomically on every change).
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface Outcome {
  task_id: string;
  success: boolean;
  result?: unknown;
  error?: string;
}

export interface FinishedTask {
  taskId: string;
  /** The attempt the outcome belongs to (the coordinator counts attempts per assignment). */
  attempt: number;
  outcome: Outcome;
  /** The coordinator answered it (applied or refused for good); until then it is sent again after each reconnect. */
  acked: boolean;
}

interface StateFile {
  version: 1;
  finished: FinishedTask[];
}

export class OutcomeLedger {
  private readonly finished = new Map<string, FinishedTask>();

  constructor(
    private readonly stateFile: string | null,
    private readonly maxFinished = 500,
    private readonly warn: (msg: string, fields: Record<string, unknown>) => void = () => undefined,
  ) {
    this.load();
  }

  /** Records a finished task's outcome (unacknowledged) before it is sent. */
  record(taskId: string, attempt: number, outcome: Outcome): void {
    this.finished.delete(taskId); // re-inserted: newest last
    this.finished.set(taskId, { taskId, attempt, outcome, acked: false });
    for (const oldest of this.finished.keys()) {
      if (this.finished.size <= this.maxFinished) break;
      // Never forget a result the coordinator has not acknowledged.
      if (this.finished.get(oldest)?.acked) this.finished.delete(oldest);
      else break;
    }
    this.save();
  }

  /** The coordinator answered this task's outcome: it need not be sent again. */
  acknowledge(taskId: string): boolean {
    const entry = this.finished.get(taskId);
    if (!entry || entry.acked) return false;
    entry.acked = true;
    this.save();
    return true;
  }

  /** Outcomes to send (again): every one not yet acknowledged, oldest first. */
  unacknowledged(): FinishedTask[] {
    return [...this.finished.values()].filter((e) => !e.acked);
  }

  /**
   * The kept outcome to answer an assignment with, instead of running it again:
   * a success (the work is done, whatever the attempt), or any outcome of the
   * same attempt. A failure from an earlier attempt is not kept for a retry:
   * the retry runs.
   */
  keptFor(taskId: string, attempt: number): FinishedTask | null {
    const entry = this.finished.get(taskId);
    if (!entry) return null;
    return entry.outcome.success || attempt <= entry.attempt ? entry : null;
  }

  /** Marks a kept outcome as not yet answered again (it is being re-sent for a repeated assignment). */
  reopen(taskId: string): void {
    const entry = this.finished.get(taskId);
    if (entry?.acked) {
      entry.acked = false;
      this.save();
    }
  }

  private load(): void {
    if (!this.stateFile) return;
    let text: string;
    try {
      text = readFileSync(this.stateFile, "utf8");
    } catch {
      return; // first start
    }
    try {
      const state = JSON.parse(text) as StateFile;
      if (state.version !== 1 || !Array.isArray(state.finished)) throw new Error("unknown format");
      for (const e of state.finished) if (typeof e?.taskId === "string" && e.outcome) this.finished.set(e.taskId, e);
    } catch (err) {
      // A damaged file must not keep the bot from starting; the coordinator re-queues what it does not hear about.
      this.warn("ignoring an unreadable state file", { state_file: this.stateFile, error: String(err) });
    }
  }

  private save(): void {
    if (!this.stateFile) return;
    const state: StateFile = { version: 1, finished: [...this.finished.values()] };
    mkdirSync(path.dirname(this.stateFile), { recursive: true });
    // Write then rename: a crash mid-write leaves the previous file, never half of one.
    const temp = `${this.stateFile}.${process.pid}.tmp`;
    writeFileSync(temp, JSON.stringify(state), { mode: 0o600 });
    renameSync(temp, this.stateFile);
  }
}
