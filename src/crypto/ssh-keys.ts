/**
 * Ed25519 SSH key pairs made with WebCrypto (works in the Worker and in Node),
 * encoded as OpenSSH's `openssh-key-v1` private key and an `ssh-ed25519`
 * public key line. ssh2 cannot read PKCS#8 Ed25519 keys, hence this format.
 */
import { toBase64 } from "./encoding";

export interface SshKeyPair {
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` … (unencrypted; seal it before storing). */
  privateKeyPem: string;
  /** `ssh-ed25519 AAAA… comment`, for authorized_keys and provider APIs. */
  publicKeyLine: string;
  /** SHA256 fingerprint as `ssh-keygen -lf` prints it (`SHA256:…`). */
  fingerprint: string;
}

const enc = new TextEncoder();

function u32(n: number): Uint8Array {
  return new Uint8Array([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);
}

function sshString(bytes: Uint8Array | string): Uint8Array {
  const b = typeof bytes === "string" ? enc.encode(bytes) : bytes;
  return concat(u32(b.length), b);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** The wire-format public key blob: string "ssh-ed25519", string pub. */
function ed25519PublicBlob(publicKey: Uint8Array): Uint8Array {
  return concat(sshString("ssh-ed25519"), sshString(publicKey));
}

export async function generateSshKeyPair(comment: string): Promise<SshKeyPair> {
  const pair = (await crypto.subtle.generateKey({ name: "Ed25519" }, true, ["sign", "verify"])) as CryptoKeyPair;
  const publicKey = new Uint8Array((await crypto.subtle.exportKey("raw", pair.publicKey)) as ArrayBuffer);
  const pkcs8 = new Uint8Array((await crypto.subtle.exportKey("pkcs8", pair.privateKey)) as ArrayBuffer);
  const seed = pkcs8.slice(pkcs8.length - 32); // PKCS#8 Ed25519: the 32-byte seed comes last
  return encodeOpenSshKeyPair(seed, publicKey, comment);
}

async function encodeOpenSshKeyPair(seed: Uint8Array, publicKey: Uint8Array, comment: string): Promise<SshKeyPair> {
  const publicBlob = ed25519PublicBlob(publicKey);
  const check = crypto.getRandomValues(new Uint8Array(4));
  let privateSection = concat(
    check,
    check,
    sshString("ssh-ed25519"),
    sshString(publicKey),
    sshString(concat(seed, publicKey)),
    sshString(comment),
  );
  // Pad to the cipher block size (8 for "none") with 1, 2, 3, …
  const padding = (8 - (privateSection.length % 8)) % 8;
  privateSection = concat(
    privateSection,
    Uint8Array.from({ length: padding }, (_, i) => i + 1),
  );
  const body = concat(
    enc.encode("openssh-key-v1\0"),
    sshString("none"),
    sshString("none"),
    sshString(new Uint8Array(0)),
    u32(1),
    sshString(publicBlob),
    sshString(privateSection),
  );
  const b64 = toBase64(body)
    .replace(/(.{70})/g, "$1\n")
    .replace(/\n$/, "");
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", publicBlob));
  return {
    privateKeyPem: `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----\n`,
    publicKeyLine: `ssh-ed25519 ${toBase64(publicBlob)} ${comment}`,
    fingerprint: `SHA256:${toBase64(digest).replace(/=+$/, "")}`,
  };
}
