/**
 * Bot control WebSocket messages (seed 001 shapes). Plain zod so the bot client
 * can import these without the HTTP stack.
 */
import { z } from "zod";

export { CLOSE_CODES, HEARTBEAT_ACK_FRAME, HEARTBEAT_FRAME, MAX_MESSAGE_BYTES } from "./ws-frames";

export const BotMessage = z.discriminatedUnion("type", [
  z.object({ type: z.literal("heartbeat"), payload: z.unknown().optional() }),
  z.object({
    type: z.literal("task_started"),
    payload: z.object({ task_id: z.string().min(1).max(100) }),
  }),
  z.object({
    type: z.literal("task_progress"),
    payload: z.object({
      task_id: z.string().min(1).max(100),
      progress: z.number().min(0).max(100),
      message: z.string().max(2000).optional(),
    }),
  }),
  z.object({
    type: z.literal("task_log"),
    payload: z.object({
      task_id: z.string().min(1).max(100),
      stream: z.enum(["stdout", "stderr"]).default("stdout"),
      lines: z.array(z.string().max(4000)).min(1).max(200),
    }),
  }),
  z.object({
    type: z.literal("task_complete"),
    payload: z.object({
      task_id: z.string().min(1).max(100),
      success: z.boolean().default(true),
      result: z.unknown().optional(),
      error: z.string().max(10_000).optional(),
    }),
  }),
]);
export type BotMessage = z.infer<typeof BotMessage>;
/** What a bot may send (defaults not yet applied: `success` may be left out). */
export type BotMessageInput = z.input<typeof BotMessage>;

export interface TaskAssignedMessage {
  type: "task_assigned";
  payload: {
    task_id: string;
    task_payload: unknown;
    timeout_seconds: number;
    attempt: number;
    capability: string | null;
    /** The job's input files (added to seed 001's shape; old clients ignore it), each with a short-lived download URL. */
    input_artifacts?: AssignedArtifact[];
  };
}

export interface AssignedArtifact {
  id: string;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
  /** Relative to the coordinator; a GET needs no token until `expires_at`. */
  url: string;
  expires_at: string;
}
export type ServerMessage =
  | { type: "connected"; payload: { bot_id: string; heartbeat_interval_s: number; server_time: string } }
  | TaskAssignedMessage
  | { type: "task_cancelled"; payload: { task_id: string; reason: string } }
  /**
   * `ack_of` (added to seed 001's shape; old clients ignore it) says which message is answered, so a
   * client can tell the ack of its result from the ack of its `task_started`. `applied: false`: the
   * message was refused for good (the task moved on); the client should not send it again.
   */
  | { type: "task_ack"; payload: { task_id: string; status: string; applied: boolean; ack_of: "task_started" | "task_complete" } }
  | { type: "heartbeat_ack" }
  | { type: "error"; payload: { code: string; message: string; details?: Record<string, unknown> } };
