/** Reading one frame a bot sent: size, JSON, then the message contract. */
import { BotMessage, MAX_MESSAGE_BYTES } from "../contracts/ws";
import type { ErrorCode } from "../errors";

export type ParsedFrame =
  | { ok: true; msg: BotMessage }
  | { ok: false; code: ErrorCode; message: string; details?: Record<string, unknown> };

export function parseBotFrame(raw: string | ArrayBuffer): ParsedFrame {
  const size = typeof raw === "string" ? raw.length : raw.byteLength;
  if (size > MAX_MESSAGE_BYTES)
    return { ok: false, code: "payload_too_large", message: `messages are limited to ${MAX_MESSAGE_BYTES} bytes` };
  let json: unknown;
  try {
    json = JSON.parse(typeof raw === "string" ? raw : new TextDecoder().decode(raw));
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
