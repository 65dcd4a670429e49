/**
 * Group commit for D1: one Durable Object through which guarded batches go.
 * While one D1 batch is on its way, the batches that arrive wait, and then go
 * together as one — one round trip for many writers (bots reporting results at
 * the same moment, a burst of creates), where each would otherwise queue for
 * D1 on its own. Idle, a batch goes at once: the cost is one RPC hop.
 *
 * Nothing about a batch changes: D1 runs the combined batch as one
 * transaction, its groups one after the other and never interleaved, each
 * group's statements conditional on its own version and write_id as before. A
 * statement that fails (a constraint, not a condition) rolls the whole
 * combined batch back; then each group runs again on its own, so its error
 * reaches only the writer that sent it.
 */
import { DurableObject } from "cloudflare:workers";
import { countRowsRead, d1RoundTrips, type StatementResult, timedD1 } from "../db/client";

/** A statement as it travels: SQL text and its bound values. */
export interface Query {
  sql: string;
  params: unknown[];
}

/** The longest a batch may wait for company (batch's `lingerMs`). */
const MAX_LINGER_MS = 20;

/** Statements one combined batch carries at most (each group stays whole). */
const MAX_STATEMENTS_PER_BATCH = 400;

interface Waiting {
  queries: Query[];
  resolve: (results: StatementResult[]) => void;
  reject: (err: unknown) => void;
}

/** A batch's own results, and whether other writers' batches were in flight when it arrived (load). */
export interface WriterAnswer {
  results: StatementResult[];
  othersInFlight: boolean;
}

export class D1Writer extends DurableObject<Env> {
  private readonly waiting: Waiting[] = [];
  private committing = false;
  /** A lone batch that may wait for company (see batch's `lingerMs`), and when it stops waiting. */
  private lingering: ReturnType<typeof setTimeout> | null = null;
  /** Batches someone waits on (not lingering) between their arrival and their answer: the writer's load. */
  private urgentInFlight = 0;

  /**
   * Runs `queries` as one guarded batch (with whatever else is waiting); answers with its own results.
   * `lingerMs`: a batch nobody waits on at once (a result the bot has already been told of, kept in
   * its object's storage) waits that long before it goes, so that what the caller does next (the ack,
   * the next request) runs first; any batch arriving in the meantime sends both at once, the lingering
   * one first. The answer says whether other batches someone waits on were in flight on arrival: a
   * writer under load (the caller then stops writing results behind for a while).
   */
  async batch(queries: Query[], lingerMs = 0): Promise<WriterAnswer> {
    const othersInFlight = this.urgentInFlight > 0;
    const urgent = lingerMs <= 0;
    if (urgent) this.urgentInFlight++;
    try {
      return { results: await this.enqueue(queries, lingerMs), othersInFlight };
    } finally {
      if (urgent) this.urgentInFlight--;
    }
  }

  private enqueue(queries: Query[], lingerMs: number): Promise<StatementResult[]> {
    const done = new Promise<StatementResult[]>((resolve, reject) => this.waiting.push({ queries, resolve, reject }));
    if (this.committing) return done;
    if (lingerMs > 0 && this.waiting.length === 1) {
      this.lingering = setTimeout(() => this.stopLingering(), Math.min(lingerMs, MAX_LINGER_MS));
      return done;
    }
    this.stopLingering();
    return done;
  }

  private stopLingering(): void {
    if (this.lingering !== null) clearTimeout(this.lingering);
    this.lingering = null;
    if (!this.committing) void this.commitWaiting();
  }

  private async commitWaiting(): Promise<void> {
    this.committing = true;
    try {
      // Bounded: each turn takes at least one group off the list.
      while (this.waiting.length > 0) await this.commit(this.takeGroups());
    } finally {
      this.committing = false;
    }
  }

  private takeGroups(): Waiting[] {
    const groups: Waiting[] = [this.waiting.shift()!];
    let statements = groups[0]!.queries.length;
    while (this.waiting.length > 0 && statements + this.waiting[0]!.queries.length <= MAX_STATEMENTS_PER_BATCH) {
      const next = this.waiting.shift()!;
      statements += next.queries.length;
      groups.push(next);
    }
    return groups;
  }

  private async commit(groups: Waiting[]): Promise<void> {
    if (groups.length > 1) {
      try {
        const results = await this.run(groups.flatMap((g) => g.queries));
        let at = 0;
        for (const g of groups) {
          g.resolve(results.slice(at, at + g.queries.length));
          at += g.queries.length;
        }
        return;
      } catch {
        // Rolled back as a whole: each group on its own below, so only the failing one fails.
      }
    }
    for (const g of groups) {
      try {
        g.resolve(await this.run(g.queries));
      } catch (err) {
        g.reject(err);
      }
    }
  }

  private run(queries: Query[]): Promise<StatementResult[]> {
    d1RoundTrips.count++;
    d1RoundTrips.statements += queries.length;
    const d1 = this.env.DB;
    return timedD1(d1.batch(queries.map((q) => d1.prepare(q.sql).bind(...q.params))))
      .then(countRowsRead)
      .then((results) => results.map((r) => ({ results: r.results ?? [], meta: { changes: r.meta.changes } })));
  }
}
