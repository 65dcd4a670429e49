/** One SSH session per operation: connect (host key checked), run one command, disconnect. */
import { createHash } from "node:crypto";
import ssh2 from "ssh2";

const { Client } = ssh2;

export class SshError extends Error {
  constructor(
    readonly code: "host_key_mismatch" | "ssh_unreachable" | "ssh_auth_failed" | "command_failed",
    message: string,
  ) {
    super(message);
  }
}

export interface SshTarget {
  address: string;
  port: number;
  username: string;
  privateKey: string;
  /** Pinned host key SHA-256 (base64, no padding); null accepts any key and reports it. */
  hostKeySha256: string | null;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  hostKeySha256: string;
}

const MAX_OUTPUT_BYTES = 256 * 1024;

export const hostKeyFingerprint = (key: Buffer) => createHash("sha256").update(key).digest("base64").replace(/=+$/, "");

export function execOnce(target: SshTarget, command: string, stdin: Buffer | null, timeoutMs: number): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    let seenKey = "";
    let hostKeyRejected = false;
    let settled = false;
    const finish = (err: Error | null, result?: ExecResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      client.end();
      if (err) reject(err);
      else resolve(result!);
    };
    const timer = setTimeout(() => finish(new SshError("ssh_unreachable", `no answer within ${timeoutMs}ms`)), timeoutMs);
    client.on("error", (err: Error & { level?: string }) => {
      if (hostKeyRejected) {
        return finish(
          new SshError("host_key_mismatch", `host key SHA256:${seenKey} does not match the pinned SHA256:${target.hostKeySha256}`),
        );
      }
      if (err.level === "client-authentication") return finish(new SshError("ssh_auth_failed", "the VPS refused our SSH key"));
      finish(new SshError("ssh_unreachable", err.message));
    });
    client.on("ready", () => {
      client.exec(command, (err, stream) => {
        if (err) return finish(new SshError("command_failed", err.message));
        let stdout = "";
        let stderr = "";
        stream.on("data", (d: Buffer) => {
          if (stdout.length < MAX_OUTPUT_BYTES) stdout += d.toString("utf8");
        });
        stream.stderr.on("data", (d: Buffer) => {
          if (stderr.length < MAX_OUTPUT_BYTES) stderr += d.toString("utf8");
        });
        stream.on("close", (code: number | null) => finish(null, { code: code ?? -1, stdout, stderr, hostKeySha256: seenKey }));
        if (stdin) stream.end(stdin);
        else stream.end();
      });
    });
    client.connect({
      host: target.address,
      port: target.port,
      username: target.username,
      privateKey: target.privateKey,
      readyTimeout: Math.min(timeoutMs, 20_000),
      hostVerifier: (key: Buffer) => {
        seenKey = hostKeyFingerprint(key);
        if (target.hostKeySha256 && seenKey !== target.hostKeySha256) {
          hostKeyRejected = true; // ssh2 now fails the handshake; the error handler reports it as a mismatch
          return false;
        }
        return true;
      },
    });
  });
}
