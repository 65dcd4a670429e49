/**
 * Event streams (pure): what one stored event looks like on the wire, per
 * client dialect. One ordered log per job, project, deployment and the fleet;
 * the stream's Durable Object numbers the events (`seq`, from 1, no gaps).
 */

/** Seed 003/004 event types, and the fleet's. */
export const STREAM_EVENT_TYPES = [
  "status",
  "task_started",
  "step",
  "log",
  "progress",
  "screenshot",
  "complete",
  "error",
  "bot",
  "job",
  "project",
  "deployment",
  "queue",
  "bot_health",
  "decision",
] as const;
export type StreamEventType = (typeof STREAM_EVENT_TYPES)[number];

/** What a publisher hands the stream. */
export interface NewStreamEvent {
  type: StreamEventType;
  data: Record<string, unknown>;
}

export interface StoredStreamEvent extends NewStreamEvent {
  seq: number;
  timestampMs: number;
}

/** `seed003`: `/ws/jobs/{id}` and the rest; `seed004`: `/ws/execution/{id}`, where the final event is `execution_completed`. */
export type StreamDialect = "seed003" | "seed004";

export interface StreamMessage {
  type: string;
  seq: number;
  timestamp: string;
  data: Record<string, unknown>;
  status?: unknown;
  progress?: unknown;
}

/**
 * `{type, seq, timestamp, data}`; for seed 003 clients `status` and `progress`
 * are also at the top level of `status` and `complete` messages.
 */
export function streamMessage(e: StoredStreamEvent, dialect: StreamDialect = "seed003"): StreamMessage {
  const type = e.type === "complete" && dialect === "seed004" ? "execution_completed" : e.type;
  const msg: StreamMessage = { type, seq: e.seq, timestamp: new Date(e.timestampMs).toISOString(), data: e.data };
  if (e.type === "status" || e.type === "complete") {
    if ("status" in e.data) msg.status = e.data.status;
    if ("progress" in e.data) msg.progress = e.data.progress;
  }
  return msg;
}

/** Streams are named `<kind>:<id>`, or `fleet`. */
export const STREAM_KINDS = ["job", "project", "deployment"] as const;
export type StreamKind = (typeof STREAM_KINDS)[number];
export const streamName = (kind: StreamKind, id: string) => `${kind}:${id}`;
export const FLEET_STREAM = "fleet";

/** One Server-Sent Events record (the `id` is the seq, so `Last-Event-ID` resumes). */
export function sseRecord(m: StreamMessage): string {
  return `id: ${m.seq}\nevent: ${m.type}\ndata: ${JSON.stringify(m)}\n\n`;
}
