/** The D1 copy of the event streams (schema.ts `stream_events`), written by each stream's object from its outbox. */
import { sql } from "drizzle-orm";
import { runBatch, type Statement } from "./batch";
import type { Db } from "./client";

export interface StreamEventCopy {
  seq: number;
  type: string;
  /** The event's data, as JSON text. */
  data: string;
  createdAt: number;
}

/** D1 takes a bound value of up to 2 MB: each statement carries at most this much JSON. */
const MAX_JSON_BYTES_PER_STATEMENT = 1_000_000;

/**
 * Copies events of one stream in one round trip: the rows travel as JSON read by json_each (never a
 * parameter per row), split into statements of at most ~1 MB; a row already copied is left as it is.
 */
export async function copyStreamEvents(db: Db, stream: string, events: StreamEventCopy[]): Promise<void> {
  const statements: Statement[] = [];
  let chunk: StreamEventCopy[] = [];
  let bytes = 0;
  const flush = () => {
    if (!chunk.length) return;
    const json = JSON.stringify(chunk.map((e) => ({ seq: e.seq, type: e.type, data: e.data, created_at: e.createdAt })));
    statements.push(
      sql`INSERT OR IGNORE INTO stream_events (stream, seq, type, data, created_at)
          SELECT ${stream}, json_extract(value, '$.seq'), json_extract(value, '$.type'), json_extract(value, '$.data'),
                 json_extract(value, '$.created_at')
          FROM json_each(${json})`,
    );
    chunk = [];
    bytes = 0;
  };
  for (const e of events) {
    const size = e.data.length + e.type.length + 64;
    if (bytes + size > MAX_JSON_BYTES_PER_STATEMENT) flush();
    chunk.push(e);
    bytes += size;
  }
  flush();
  if (statements.length) await runBatch(db, statements);
}
