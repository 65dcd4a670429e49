/**
 * Byte encodings and digests, once: hex, base64, base64url, SHA and HMAC.
 * WebCrypto only, so the same code runs in the Worker, the relay and tests.
 */

const utf8 = new TextEncoder();

export function toHex(bytes: ArrayBuffer | Uint8Array): string {
  return [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

export function toBase64(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** URL- and filename-safe base64 without padding (RFC 4648 §5). */
export function toBase64Url(bytes: Uint8Array): string {
  return toBase64(bytes).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
}

/** Throws on text that is not base64url. */
export function fromBase64Url(text: string): Uint8Array {
  return fromBase64(text.replace(/-/g, "+").replace(/_/g, "/"));
}

/** UTF-8 text ⇄ base64 (the setup script travels to the relay this way). */
export const utf8ToBase64 = (text: string): string => toBase64(utf8.encode(text));

export async function digestHex(algorithm: "SHA-1" | "SHA-256", text: string): Promise<string> {
  return toHex(await crypto.subtle.digest(algorithm, utf8.encode(text)));
}

export const sha256Hex = (text: string): Promise<string> => digestHex("SHA-256", text);

export async function hmacSha256Hex(secret: string, message: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return toHex(await crypto.subtle.sign("HMAC", key, utf8.encode(message)));
}

/** A random secret for a URL or a header: 32 bytes, base64url. */
export const randomToken = (): string => toBase64Url(crypto.getRandomValues(new Uint8Array(32)));
