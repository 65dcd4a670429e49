/**
 * The coordinator's counters and histograms, in one Durable Object's own SQLite, so they survive
 * restarts and redeploys (Worker memory does not). Isolates add what they counted in batches
 * (services/metrics.ts flushes at most once a second each); the scrape reads every series.
 */
import { DurableObject } from "cloudflare:workers";
import { labelText, type Series } from "../core/metrics";

/** Series one `add` takes at most (a flush is far smaller; this bounds a bad caller). */
export const MAX_SERIES_PER_ADD = 2000;

export class MetricsStore extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(state: DurableObjectState, env: Env) {
    super(state, env);
    this.sql = state.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS series (
      name TEXT NOT NULL, label_key TEXT NOT NULL, labels TEXT NOT NULL, value REAL NOT NULL,
      PRIMARY KEY (name, label_key))`);
  }

  /** Adds each delta to its series (made at 0 when new), all in one transaction. */
  async add(deltas: Series[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      for (const d of deltas.slice(0, MAX_SERIES_PER_ADD)) {
        if (!Number.isFinite(d.value)) continue;
        this.sql.exec(
          `INSERT INTO series (name, label_key, labels, value) VALUES (?, ?, ?, ?)
           ON CONFLICT (name, label_key) DO UPDATE SET value = value + excluded.value`,
          d.name,
          labelText(d.labels),
          JSON.stringify(d.labels),
          d.value,
        );
      }
    });
  }

  async read(): Promise<Series[]> {
    return this.sql
      .exec<{ name: string; labels: string; value: number }>("SELECT name, labels, value FROM series")
      .toArray()
      .map((r) => ({ name: r.name, labels: JSON.parse(r.labels), value: r.value }));
  }
}
