/**
 * Secrets at rest (SSH private keys, OpenRouter key secrets): AES-256-GCM with
 * a key derived from the `DEPLOY_SECRET_KEY` secret. The record id is bound as
 * additional data, so a sealed value copied to another row does not open.
 */
import { fromBase64, toBase64 } from "./encoding";

const VERSION = "v1";

async function deriveKey(secret: string): Promise<CryptoKey> {
  if (secret.length < 16) throw new Error("DEPLOY_SECRET_KEY must be at least 16 characters");
  const material = await crypto.subtle.importKey("raw", new TextEncoder().encode(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: new TextEncoder().encode("clawbot-coordinator/seal/v1"), info: new Uint8Array(0) },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

export async function seal(secret: string, plaintext: string, boundTo: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const key = await deriveKey(secret);
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: new TextEncoder().encode(boundTo) },
    key,
    new TextEncoder().encode(plaintext),
  );
  return `${VERSION}:${toBase64(iv)}:${toBase64(new Uint8Array(ct))}`;
}

export async function open(secret: string, sealed: string, boundTo: string): Promise<string> {
  const [version, ivB64, ctB64] = sealed.split(":");
  if (version !== VERSION || !ivB64 || !ctB64) throw new Error("not a sealed value");
  const key = await deriveKey(secret);
  const pt = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: fromBase64(ivB64), additionalData: new TextEncoder().encode(boundTo) },
    key,
    fromBase64(ctB64),
  );
  return new TextDecoder().decode(pt);
}
