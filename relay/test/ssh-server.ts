/** A real SSH server for tests (ssh2 Server): public-key auth for one key, exec runs bash locally. */
import { spawn } from "node:child_process";
import { timingSafeEqual } from "node:crypto";
import { Server, utils, type Connection } from "ssh2";
import { hostKeyFingerprint } from "../src/ssh";

export interface TestSshServer {
  port: number;
  hostKeySha256: string;
  commands: string[];
  close(): Promise<void>;
}

export async function startTestSshServer(authorizedPublicKeyLine: string): Promise<TestSshServer> {
  const host = utils.generateKeyPairSync("ed25519");
  const parsedHost = utils.parseKey(host.private);
  if (parsedHost instanceof Error) throw parsedHost;
  const allowed = utils.parseKey(authorizedPublicKeyLine);
  if (allowed instanceof Error) throw allowed;
  const allowedKey = Array.isArray(allowed) ? allowed[0]! : allowed;
  const commands: string[] = [];
  const connections = new Set<Connection>();

  const server = new Server({ hostKeys: [host.private] }, (client) => {
    connections.add(client);
    client.on("close", () => connections.delete(client));
    client.on("error", () => undefined);
    client.on("authentication", (ctx) => {
      if (ctx.method !== "publickey") return ctx.reject(["publickey"]);
      const same = ctx.key.algo === allowedKey.type && ctx.key.data.length === allowedKey.getPublicSSH().length && timingSafeEqual(ctx.key.data, allowedKey.getPublicSSH());
      if (!same) return ctx.reject(["publickey"]);
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
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const hostPublic = Array.isArray(parsedHost) ? parsedHost[0]! : parsedHost;
  return {
    port: (server.address() as { port: number }).port,
    hostKeySha256: hostKeyFingerprint(hostPublic.getPublicSSH()),
    commands,
    close: () =>
      new Promise((resolve) => {
        connections.forEach((c) => c.end());
        server.close(() => resolve());
      }),
  };
}
