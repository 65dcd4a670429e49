/**
 * One Durable Object per event stream (`job:<id>`, `project:<id>`,
 * `deployment:<id>`, `fleet`): the ordered log of what happened, and the fan
 * out to everyone watching.
 *
 * - It is the only writer of `seq` (1, 2, 3, … with no gaps): `publish` numbers
 *   and stores the events in this object's own SQLite before it sends them, so
 *   events published before anyone watches are kept, and a watcher that comes
 *   back with `?since=<seq>` gets exactly what it missed — no gap, no duplicate.
 * - Watchers hold hibernating WebSockets (idle watchers cost nothing; the runtime
 *   answers their `{"type":"ping"}`); Server-Sent Events clients hold a stream.
 * - The latest state a publisher gave (a job's summary, say) is kept with the
 *   seq it was current at, and a watcher without `since` gets it first.
 * - Browsers cannot set headers on a WebSocket: they get a short-lived,
 *   single-use ticket minted here (only its SHA-256 is stored).
 *
 * - D1 holds a copy of the jobs', projects' and deployments' logs (`stream_events`, for queries across
 *   streams and retention), written from an outbox in this object's SQLite about a second behind: one
 *   round trip per stream per second at most. The fleet stream is not copied (see `copied`).
 *
 * The Worker authenticates and authorizes before it forwards anything here.
 */
import { DurableObject } from "cloudflare:workers";
import { FLEET_STREAM, type NewStreamEvent, type StoredStreamEvent, type StreamDialect, sseRecord, streamMessage } from "../core/stream";
import { randomToken, sha256Hex } from "../crypto/encoding";
import { type Db, getDb } from "../db/client";
import { copyStreamEvents } from "../db/stream-events";
import { resolveObjectName } from "./identity";

/** Replayed to one watcher at most; a watcher further behind pages `GET …/events` first. */
export const MAX_REPLAY_EVENTS = 10_000;
const REPLAY_PAGE = 500;
/** The D1 copy trails the log by about this much (one write per stream per interval, however many events). */
const OUTBOX_FLUSH_DELAY_MS = 1000;
const OUTBOX_BATCH = 500;
/** Batches one alarm copies at most (the rest goes with the next alarm). */
const OUTBOX_BATCHES_PER_ALARM = 4;
export const PING_FRAME = '{"type":"ping"}';
export const PONG_FRAME = '{"type":"pong"}';

/** Set by the Worker on the upgrade it forwards. */
export const STREAM_SINCE_HEADER = "X-Stream-Since";
export const STREAM_DIALECT_HEADER = "X-Stream-Dialect";

interface WatcherAttachment {
  dialect: StreamDialect;
}

interface EventRow extends Record<string, SqlStorageValue> {
  seq: number;
  type: string;
  ts: number;
  data: string;
}

export class EventStream extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  private readonly db: Db;
  /** This stream's name (`job:<id>`, …); null only for an instance nobody addressed by name. */
  private name: string | null = null;
  /** Live Server-Sent Events clients (an open SSE response keeps this object in memory). */
  private readonly sseWriters = new Set<WritableStreamDefaultWriter<Uint8Array>>();

  constructor(state: DurableObjectState, env: Env) {
    super(state, env);
    this.sql = state.storage.sql;
    this.db = getDb(env.DB);
    this.createTables();
    state.setWebSocketAutoResponse(new WebSocketRequestResponsePair(PING_FRAME, PONG_FRAME));
    state.blockConcurrencyWhile(async () => {
      this.name = await resolveObjectName(state, env.EVENT_STREAM);
    });
  }

  // ---------------------------------------------------------------- RPC

  /**
   * Appends events (numbered in order) and sends them to every watcher. `state`: what is now true of the
   * resource, merged over what the stream knew (a watcher without `since` gets the merge first). Returns the last seq.
   */
  async publish(events: NewStreamEvent[], state?: Record<string, unknown>): Promise<number> {
    const nowMs = Date.now();
    let seq = this.lastSeq();
    const stored: StoredStreamEvent[] = [];
    for (const e of events) {
      seq++;
      this.sql.exec("INSERT INTO events (seq, type, ts, data) VALUES (?, ?, ?, ?)", seq, e.type, nowMs, JSON.stringify(e.data));
      if (this.copied()) this.sql.exec("INSERT INTO outbox (seq) VALUES (?)", seq);
      stored.push({ ...e, seq, timestampMs: nowMs });
    }
    if (stored.length && this.copied() && (await this.ctx.storage.getAlarm()) === null)
      await this.ctx.storage.setAlarm(nowMs + OUTBOX_FLUSH_DELAY_MS);
    if (state) this.sql.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('state', ?)", JSON.stringify({ ...this.state(), ...state }));
    for (const e of stored) this.fanOut(e);
    return seq;
  }

  /** A page of the log after `since` (oldest first), and the last seq there is. */
  async read(since: number, limit: number): Promise<{ events: ReturnType<typeof streamMessage>[]; lastSeq: number }> {
    return { events: this.eventsAfter(since, limit).map((e) => streamMessage(e)), lastSeq: this.lastSeq() };
  }

  /** A single-use ticket that opens one watcher connection to this stream within `ttlMs`. */
  async mintTicket(ttlMs: number): Promise<string> {
    const nowMs = Date.now();
    this.sql.exec("DELETE FROM tickets WHERE expires_at <= ?", nowMs);
    const ticket = randomToken();
    this.sql.exec("INSERT INTO tickets (hash, expires_at) VALUES (?, ?)", await sha256Hex(ticket), nowMs + ttlMs);
    return ticket;
  }

  /** True once per valid, unexpired ticket: using it removes it. */
  async consumeTicket(ticket: string): Promise<boolean> {
    const hash = await sha256Hex(ticket);
    const row = this.sql.exec("DELETE FROM tickets WHERE hash = ? AND expires_at > ? RETURNING hash", hash, Date.now()).toArray();
    return row.length === 1;
  }

  /**
   * Removes the oldest events published before `beforeMs` (at most `limit`): for long-lived streams (the
   * fleet) under retention. A watcher resuming from a removed seq gets what is left after it.
   */
  async prune(beforeMs: number, limit: number): Promise<number> {
    const removed = this.sql.exec(
      // The newest event always stays: it carries the last seq, which must never be handed out again.
      "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE ts < ? AND seq < (SELECT MAX(seq) FROM events) ORDER BY seq LIMIT ?) RETURNING seq",
      beforeMs,
      limit,
    );
    return removed.toArray().length;
  }

  /** The resource is gone (deleted, or past retention): close every watcher and forget the log. */
  async destroy(): Promise<void> {
    for (const ws of this.ctx.getWebSockets()) ws.close(1000, "stream deleted");
    for (const w of this.sseWriters) void w.close().catch(() => undefined);
    this.sseWriters.clear();
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.createTables(); // this instance may still be asked (a late publish, a read): it answers as an empty stream
  }

  /**
   * Copies what the outbox holds to D1 (`stream_events`), oldest first, bounded per alarm; an alarm that
   * throws is retried by the runtime, and a row copied twice is left as it was, so nothing is lost or doubled.
   */
  async alarm(): Promise<void> {
    if (!this.name) return;
    for (let batch = 0; batch < OUTBOX_BATCHES_PER_ALARM; batch++) {
      const rows = this.sql
        .exec<EventRow>(
          "SELECT e.seq AS seq, e.type AS type, e.ts AS ts, e.data AS data FROM outbox o JOIN events e ON e.seq = o.seq ORDER BY o.seq LIMIT ?",
          OUTBOX_BATCH,
        )
        .toArray();
      if (rows.length === 0) break;
      await copyStreamEvents(
        this.db,
        this.name,
        rows.map((r) => ({ seq: r.seq, type: r.type, data: r.data, createdAt: r.ts })),
      );
      this.sql.exec("DELETE FROM outbox WHERE seq <= ?", rows[rows.length - 1]!.seq);
    }
    // Events pruned before they were copied leave nothing to copy.
    this.sql.exec("DELETE FROM outbox WHERE seq NOT IN (SELECT seq FROM events)");
    const left = this.sql.exec<{ n: number }>("SELECT count(*) AS n FROM outbox").one().n;
    if (left > 0) await this.ctx.storage.setAlarm(Date.now() + OUTBOX_FLUSH_DELAY_MS);
  }

  // ---------------------------------------------------------------- watchers

  /** A watcher's WebSocket upgrade, or a Server-Sent Events request. The Worker has authorized it. */
  async fetch(request: Request): Promise<Response> {
    const sinceHeader = request.headers.get(STREAM_SINCE_HEADER);
    const since = sinceHeader === null || sinceHeader === "" ? null : Number(sinceHeader);
    const dialect: StreamDialect = request.headers.get(STREAM_DIALECT_HEADER) === "seed004" ? "seed004" : "seed003";
    if (request.headers.get("Upgrade")?.toLowerCase() === "websocket") return this.acceptWatcher(since, dialect);
    return this.serveSse(since);
  }

  private acceptWatcher(since: number | null, dialect: StreamDialect): Response {
    const pair = new WebSocketPair();
    const [client, server] = [pair[0], pair[1]];
    this.ctx.acceptWebSocket(server);
    server.serializeAttachment({ dialect } satisfies WatcherAttachment);
    // Synchronous from here to the end: nothing is published between the snapshot and the replay.
    for (const m of this.catchUp(since, dialect)) server.send(JSON.stringify(m));
    return new Response(null, { status: 101, webSocket: client });
  }

  private serveSse(since: number | null): Response {
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const writer = writable.getWriter();
    const encoder = new TextEncoder();
    const first = this.catchUp(since, "seed003").map(sseRecord).join("");
    void writer.write(encoder.encode(`retry: 2000\n\n${first}`)).catch(() => this.sseWriters.delete(writer));
    this.sseWriters.add(writer);
    return new Response(readable, {
      headers: { "Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-store", "X-Accel-Buffering": "no" },
    });
  }

  /**
   * What a watcher gets before live events: without `since`, the current state
   * (a `status` message carrying the last seq, so a reconnect can resume from
   * it); with `since`, every event after it (bounded).
   */
  private catchUp(since: number | null, dialect: StreamDialect) {
    const lastSeq = this.lastSeq();
    if (since === null) {
      // Always sent, even by a stream that keeps no state (the fleet): it tells the watcher where it
      // stands, so that after a drop it resumes from that seq and misses nothing.
      const data = { ...(this.state() ?? {}), snapshot: true };
      return [streamMessage({ type: "status", seq: lastSeq, timestampMs: Date.now(), data }, dialect)];
    }
    const out: ReturnType<typeof streamMessage>[] = [];
    let after = since;
    while (out.length < MAX_REPLAY_EVENTS && after < lastSeq) {
      const page = this.eventsAfter(after, Math.min(REPLAY_PAGE, MAX_REPLAY_EVENTS - out.length));
      if (page.length === 0) break;
      for (const e of page) out.push(streamMessage(e, dialect));
      after = page[page.length - 1]!.seq;
    }
    return out;
  }

  webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): void {
    // Watchers only listen; anything but the runtime-answered ping gets a hint.
    if (raw !== PING_FRAME) {
      ws.send(JSON.stringify({ type: "error", data: { code: "read_only", message: 'this stream only sends; ping with {"type":"ping"}' } }));
    }
  }

  webSocketClose(ws: WebSocket, code: number): void {
    try {
      ws.close(code === 1005 || code === 1006 ? 1000 : code, "bye");
    } catch {
      // already closed
    }
  }

  // ---------------------------------------------------------------- helpers

  /** Jobs', projects' and deployments' logs are copied to D1; the fleet's (high churn, for dashboards) is not: it is pruned in place. */
  private copied(): boolean {
    return this.name !== null && this.name !== FLEET_STREAM;
  }

  private createTables(): void {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, type TEXT NOT NULL, ts INTEGER NOT NULL, data TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS tickets (hash TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY);`);
  }

  private fanOut(e: StoredStreamEvent): void {
    const byDialect = new Map<StreamDialect, string>();
    const frame = (d: StreamDialect) => {
      const known = byDialect.get(d);
      if (known) return known;
      const made = JSON.stringify(streamMessage(e, d));
      byDialect.set(d, made);
      return made;
    };
    for (const ws of this.ctx.getWebSockets()) {
      try {
        ws.send(frame((ws.deserializeAttachment() as WatcherAttachment | null)?.dialect ?? "seed003"));
      } catch {
        // closing; the runtime cleans it up
      }
    }
    if (this.sseWriters.size) {
      const bytes = new TextEncoder().encode(sseRecord(streamMessage(e)));
      for (const w of this.sseWriters) void w.write(bytes).catch(() => this.sseWriters.delete(w));
    }
  }

  private state(): Record<string, unknown> | null {
    const row = this.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'state'").toArray()[0];
    return row ? (JSON.parse(row.value) as Record<string, unknown>) : null;
  }

  private lastSeq(): number {
    return this.sql.exec<{ s: number }>("SELECT COALESCE(MAX(seq), 0) AS s FROM events").one().s;
  }

  private eventsAfter(since: number, limit: number): StoredStreamEvent[] {
    return this.sql
      .exec<EventRow>("SELECT seq, type, ts, data FROM events WHERE seq > ? ORDER BY seq LIMIT ?", since, limit)
      .toArray()
      .map((r) => ({ seq: r.seq, type: r.type as StoredStreamEvent["type"], timestampMs: r.ts, data: JSON.parse(r.data) }));
  }
}
