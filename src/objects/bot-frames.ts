/** Frames between a bot and its object: reading one it sent (size, JSON, the contract), and the task it is sent. */
import { jsonTooDeep, MAX_JSON_DEPTH } from "../contracts/json-depth";
import { BotMessage, MAX_MESSAGE_BYTES, type TaskAssignedMessage } from "../contracts/ws";
import type { TaskRow } from "../db/schema";
import type { ErrorCode } from "../errors";
import { signUrl } from "../services/artifact-urls";
import type { Ctx } from "../services/context";

export type ParsedFrame =
  | { ok: true; msg: BotMessage }
  | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> };

const utf8 = new TextEncoder();

export function parseBotFrame(raw: string | ArrayBuffer): ParsedFrame {
  // The cap is in bytes as sent (UTF-8), not in UTF-16 code units.
  const size = typeof raw === "string" ? utf8.encode(raw).byteLength : raw.byteLength;
  if (size > MAX_MESSAGE_BYTES)
    return { ok: false, code: "payload_too_large", message: `messages are limited to ${MAX_MESSAGE_BYTES} bytes` };
  const text = typeof raw === "string" ? raw : new TextDecoder().decode(raw);
  if (jsonTooDeep(text)) {
    return {
      ok: false,
      code: "validation_failed",
      message: `JSON nested deeper than ${MAX_JSON_DEPTH} levels`,
      details: { max_depth: MAX_JSON_DEPTH },
    };
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, code: "invalid_json", message: "message is not valid JSON" };
  }
  const parsed = BotMessage.safeParse(json);
  if (!parsed.success) {
    return {
      ok: false,
      code: "validation_failed",
      message: "unknown or malformed message",
      details: { issues: parsed.error.issues.map((i) => ({ path: i.path.join("."), message: i.message })) },
    };
  }
  return { ok: true, msg: parsed.data };
}

/** `task_assigned`; input files get download URLs signed now, so they are fresh whenever the task is (re)sent. */
export async function assignmentOf(ctx: Ctx, task: TaskRow): Promise<TaskAssignedMessage> {
  const inputArtifacts = task.inputArtifacts?.length
    ? await Promise.all(
        task.inputArtifacts.map(async (a) => {
          const signed = await signUrl(ctx, "GET", a.id);
          return { ...a, url: signed.url, expires_at: signed.expires_at };
        }),
      )
    : undefined;
  return {
    type: "task_assigned",
    payload: {
      task_id: task.id,
      task_payload: task.payload,
      timeout_seconds: task.timeoutSeconds,
      attempt: task.attempts,
      capability: task.capability,
      ...(inputArtifacts ? { input_artifacts: inputArtifacts } : {}),
    },
  };
}
