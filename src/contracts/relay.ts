/**
 * The coordinator ↔ SSH relay contract. The relay runs only these operations,
 * and only for requests signed with the shared RELAY_SECRET:
 *   X-Relay-Timestamp: unix seconds, X-Relay-Signature: hex HMAC-SHA256(secret, `${timestamp}.${body}`).
 * The signed body names the deployment and its VPS address together, so the
 * relay only ever reaches the host the coordinator signed for.
 */
import { z } from "zod";
import { constantTimeEqual } from "../crypto/compare";
import { hmacSha256Hex } from "../crypto/encoding";

/** Paths on the VPS: absolute, plain characters only (they end up in a command line). */
const SafePath = z
  .string()
  .regex(/^\/[A-Za-z0-9._/-]{1,200}$/, "an absolute path of letters, digits, . _ / -")
  .refine((p) => !p.includes(".."), "no '..'");

const Target = z.object({
  /** Random per request: identical operations (marker polls) still sign differently, so replays are detectable. */
  nonce: z.string().min(16).max(100),
  deployment_id: z.string().min(1).max(100),
  host: z.string().min(1).max(253),
  port: z.number().int().min(1).max(65535).default(22),
  username: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/),
  private_key: z.string().min(1).max(10_000),
  /** SHA-256 of the host key (base64, as ssh-keygen shows it without the prefix). Absent only at ssh_ready, which pins it. */
  host_key_sha256: z.string().max(100).nullable().default(null),
});

/** Every operation but the readiness check (which learns the key) talks only to the pinned host key. */
const Pinned = Target.extend({ host_key_sha256: z.string().min(1).max(100) });

export const RelayRequest = z.discriminatedUnion("op", [
  Target.extend({ op: z.literal("check_ready") }),
  Pinned.extend({
    op: z.literal("upload_script"),
    path: SafePath,
    script_b64: z
      .string()
      .max(512 * 1024)
      .regex(/^[A-Za-z0-9+/=]*$/),
  }),
  Pinned.extend({ op: z.literal("launch_detached"), path: SafePath, log_path: SafePath }),
  Pinned.extend({ op: z.literal("read_markers"), marker_dir: SafePath }),
]);
export type RelayRequest = z.infer<typeof RelayRequest>;
export type RelayRequestInput = z.input<typeof RelayRequest>;

export const MARKER_FILES = {
  started: ".openclaw-setup-started",
  progress: ".openclaw-setup-progress",
  complete: ".openclaw-setup-complete",
  error: ".openclaw-setup-error",
  token: ".openclaw-setup-token",
} as const;
export type Markers = { [K in keyof typeof MARKER_FILES]: string | null };

export type RelayResult =
  | { op: "check_ready"; ready: true; host_key_sha256: string }
  | { op: "upload_script"; bytes: number }
  | { op: "launch_detached"; launched: true }
  | { op: "read_markers"; markers: Markers };

const RELAY_ERROR_CODES = [
  "bad_signature",
  "stale_request",
  "replayed_request",
  "validation_failed",
  "target_refused",
  "host_key_mismatch",
  "ssh_unreachable",
  "ssh_auth_failed",
  "command_failed",
  "internal_error",
] as const;
export type RelayErrorCode = (typeof RELAY_ERROR_CODES)[number];

/** Requests older or newer than this are refused (replays, skewed clocks). */
export const RELAY_MAX_SKEW_S = 60;

export async function signRelayBody(secret: string, body: string, timestampS: number): Promise<Record<string, string>> {
  return { "X-Relay-Timestamp": String(timestampS), "X-Relay-Signature": await hmacSha256Hex(secret, `${timestampS}.${body}`) };
}

/** The timestamp alone: checked before a request's body is read, so a stale request costs nothing. */
export function checkRelayTimestamp(timestamp: string | undefined, nowS: number): RelayErrorCode | null {
  if (!timestamp || !/^\d+$/.test(timestamp)) return "bad_signature";
  return Math.abs(nowS - Number(timestamp)) > RELAY_MAX_SKEW_S ? "stale_request" : null;
}

export async function verifyRelaySignature(
  secret: string,
  body: string,
  timestamp: string | undefined,
  signature: string | undefined,
  nowS: number,
): Promise<RelayErrorCode | null> {
  if (!signature) return "bad_signature";
  const timeError = checkRelayTimestamp(timestamp, nowS);
  if (timeError) return timeError;
  return constantTimeEqual(await hmacSha256Hex(secret, `${timestamp}.${body}`), signature) ? null : "bad_signature";
}

/** A relay request before the client adds its nonce (distributes over the union of operations). */
export type RelayOp = RelayRequestInput extends infer T ? (T extends unknown ? Omit<T, "nonce"> : never) : never;
