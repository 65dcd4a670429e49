/** A real SSH server (ssh2 Server) playing a VPS on 127.0.0.1 for npm start and tests: public-key auth, exec runs bash on this machine. */
import { spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
// ssh2 is CommonJS: a default import works under both tsx (Node ESM) and the bundlers.
import ssh2, { type Connection } from "ssh2";

const { Server, utils } = ssh2;

import { hostKeyFingerprint } from "../relay/src/ssh";

export interface TestSshServer {
  port: number;
  hostKeySha256: string;
  commands: string[];
  close(): Promise<void>;
}

/**
 * A new ed25519 host key ssh2 can read back. ssh2 1.17.0's generator strips a
 * public key's leading zero bytes, so about 1 in 256 keys it makes its own
 * parser refuses ("Malformed OpenSSH private key"; mscdex/ssh2#1390, #1513):
 * such a key is made again. Bounded; 16 misses in a row would be a 1-in-10^38 run.
 */
export function generateHostKey(): string {
  for (let attempt = 0; attempt < 16; attempt++) {
    const pair = utils.generateKeyPairSync("ed25519");
    if (isReadableKey(pair.private) && isReadableKey(pair.public)) return pair.private;
  }
  throw new Error("could not generate an ed25519 key ssh2 can parse");
}

/** ssh2 parses this key (private or public) without an error. */
export const isReadableKey = (key: string): boolean => !(utils.parseKey(key) instanceof Error);

/** `authorized`: one public key line, or `{ file }` read at every login (a provider stand-in appends to it). */
export async function startTestSshServer(
  authorized: string | { file: string },
  opts: { port?: number; hostKey?: string } = {},
): Promise<TestSshServer & { hostKey: string }> {
  const hostKey = opts.hostKey ?? generateHostKey();
  const host = { private: hostKey };
  const parsedHost = utils.parseKey(host.private);
  if (parsedHost instanceof Error) throw parsedHost;
  const allowedKeys = () => {
    const lines =
      typeof authorized === "string" ? [authorized] : existsSync(authorized.file) ? readFileSync(authorized.file, "utf8").split("\n") : [];
    return lines
      .map((l) => l.trim())
      .filter(Boolean)
      .flatMap((l) => {
        const k = utils.parseKey(l);
        return k instanceof Error ? [] : Array.isArray(k) ? k : [k];
      });
  };
  const commands: string[] = [];
  const connections = new Set<Connection>();

  const server = new Server({ hostKeys: [host.private] }, (client) => {
    connections.add(client);
    client.on("close", () => connections.delete(client));
    client.on("error", () => undefined);
    client.on("authentication", (ctx) => {
      if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
      const allowedKey = allowedKeys().find(
        (k) =>
          ctx.key.algo === k.type && ctx.key.data.length === k.getPublicSSH().length && timingSafeEqual(ctx.key.data, k.getPublicSSH()),
      );
      if (!allowedKey) return ctx.reject(["publickey"]);
      if (ctx.signature && !allowedKey.verify(ctx.blob!, ctx.signature, ctx.hashAlgo)) return ctx.reject(["publickey"]);
      ctx.accept();
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        const session = accept();
        session.on("exec", (acceptExec, _reject, info) => {
          const stream = acceptExec();
          commands.push(info.command);
          const child = spawn("bash", ["-c", info.command], { stdio: ["pipe", "pipe", "pipe"] });
          stream.pipe(child.stdin);
          child.stdout.pipe(stream, { end: false });
          child.stderr.pipe(stream.stderr, { end: false });
          child.on("close", (code) => {
            stream.exit(code ?? 1);
            stream.end();
          });
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(opts.port ?? 0, "127.0.0.1", resolve));
  const hostPublic = Array.isArray(parsedHost) ? parsedHost[0]! : parsedHost;
  return {
    hostKey,
    port: (server.address() as { port: number }).port,
    hostKeySha256: hostKeyFingerprint(hostPublic.getPublicSSH()),
    commands,
    close: () =>
      new Promise((resolve) => {
        for (const c of connections) c.end();
        server.close(() => resolve());
      }),
  };
}
