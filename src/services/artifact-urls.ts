/**
 * Short-lived signed URLs for an artifact's content: a bot downloads its task's inputs and uploads its
 * outputs with them, no API token in hand. Each URL names one artifact and one method and expires
 * (`ARTIFACT_URL_TTL_S`, 15 minutes); the signature is an HMAC-SHA256 of exactly that
 * (core/artifact.ts `signedText`) under `ARTIFACT_SIGNING_KEY` — or, without it, a key derived from
 * `ADMIN_TOKEN`, so one secret is enough to run.
 */
import { type SignedMethod, signedText } from "../core/artifact";
import { constantTimeEqual } from "../crypto/compare";
import { hmacSha256Hex } from "../crypto/encoding";
import { artifactContentPath } from "../presenters";
import type { Ctx } from "./context";

/** Open mode without any secret (local development only): a key for this isolate's life (made on first use: no randomness at global scope). */
let isolateKey: string | null = null;

function signingKey(env: Env): string {
  if (env.ARTIFACT_SIGNING_KEY) return env.ARTIFACT_SIGNING_KEY;
  if (env.ADMIN_TOKEN) return `artifact-urls:${env.ADMIN_TOKEN}`;
  isolateKey ??= crypto.randomUUID();
  return isolateKey;
}

export interface SignedUrl {
  /** Path and query, relative to the coordinator (the bot client resolves it against its server). */
  url: string;
  method: SignedMethod;
  expires_at: string;
}

export async function signUrl(ctx: Ctx, method: SignedMethod, artifactId: string): Promise<SignedUrl> {
  const expiresMs = ctx.now() + ctx.config.artifactUrlTtlMs;
  const signature = await hmacSha256Hex(signingKey(ctx.env), signedText(method, artifactId, expiresMs));
  return {
    url: `${artifactContentPath(artifactId)}?expires=${expiresMs}&signature=${signature}`,
    method,
    expires_at: new Date(expiresMs).toISOString(),
  };
}

export type Verdict = "ok" | "expired" | "invalid";

export async function verifyUrl(
  ctx: Ctx,
  method: SignedMethod,
  artifactId: string,
  expires: string | undefined,
  signature: string | undefined,
): Promise<Verdict> {
  const expiresMs = Number(expires);
  if (!signature || !/^\d{1,16}$/.test(expires ?? "")) return "invalid";
  const expected = await hmacSha256Hex(signingKey(ctx.env), signedText(method, artifactId, expiresMs));
  if (!constantTimeEqual(expected, signature)) return "invalid";
  return expiresMs < ctx.now() ? "expired" : "ok";
}
