/** Reading one frame a bot sent: size, JSON, then the message contract. */
import { jsonTooDeep, MAX_JSON_DEPTH } from "../contracts/json-depth";
import { BotMessage, MAX_MESSAGE_BYTES } from "../contracts/ws";
import type { ErrorCode } from "../errors";

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
