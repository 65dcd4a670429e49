/**
 * Global setup for the Workers-pool project (runs in Node): the real local
 * services a deployment talks to — provider and OpenRouter stand-ins, the SSH
 * relay, an ssh2 SSH server playing the VPS (it accepts the keys the provider
 * stand-in installs), and a small server playing the coordinator's public URL
 * for the setup script (bot download, callbacks). Their addresses reach the
 * Worker as bindings through `provide`.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { startRelay } from "../../relay/src/server";
import { ROOT } from "../../scripts/lib/coordinator";
import { localDeployVars, prepareLocalVps, stopLocalVpsBots } from "../../scripts/lib/local-vps";
import { startStandins } from "../../standins/server";
import { startTestSshServer } from "../../standins/ssh-vps";

export const TEST_RELAY_SECRET = "workers-test-relay-secret-0123";

declare module "vitest" {
  export interface ProvidedContext {
    deployEnv: Record<string, string>;
  }
}

export default async function setup(project: TestProject) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "cbc-deploy-"));
  const vps = prepareLocalVps(dir);
  const standins = await startStandins({ authorizedKeysFile: vps.authorizedKeysFile, vpsIp: "127.0.0.1" });
  const sshd = await startTestSshServer({ file: vps.authorizedKeysFile });
  const relay = await startRelay({ secret: TEST_RELAY_SECRET, allowPrivateTargets: true, opTimeoutMs: 15_000, log: () => {} });
  // The coordinator's public URL as the "VPS" sees it: the bot download and the callbacks.
  const publicUrl = createServer((req, res) => {
    req.resume();
    // The real bundle (the setup script checks its SHA-256 against the Worker's); the bot it starts is told
    // here that it does not exist (404 on its socket), so it stops: the tests connect as the bot themselves.
    if (req.url === "/bot/clawbot-bot.cjs") return res.end(readFileSync(path.join(ROOT, "dist/bot.cjs")));
    if (req.url?.startsWith("/api/v1/ws/control")) return res.writeHead(404).end();
    // Test-only window onto the "VPS" disk: what the setup script installed for the bot.
    const botEnv = /^\/_test\/vps\/([0-9a-f-]{36})\/bot\.env$/.exec(req.url ?? "");
    if (botEnv) {
      const file = path.join(dir, "vps", botEnv[1]!, "install/bot.env");
      if (!existsSync(file)) return res.writeHead(404).end();
      return res.end(readFileSync(file, "utf8"));
    }
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end("{}");
  });
  await new Promise<void>((r) => publicUrl.listen(0, "127.0.0.1", r));

  const publicUrlAddress = `http://127.0.0.1:${(publicUrl.address() as { port: number }).port}`;
  project.provide("deployEnv", {
    ...localDeployVars({
      paths: vps,
      coordinatorUrl: publicUrlAddress,
      standinsUrl: standins.url,
      relayUrl: relay.url,
      sshPort: sshd.port,
      pollIntervalS: 1,
    }),
    RELAY_SECRET: TEST_RELAY_SECRET,
    DEPLOY_SECRET_KEY: "workers-test-deploy-secret-key-0123",
    TEST_DEPLOY_DIR: dir,
  });

  return async () => {
    stopLocalVpsBots(dir); // the stand-in bots the setup scripts started
    publicUrl.closeAllConnections();
    standins.server.closeAllConnections();
    relay.server.closeAllConnections();
    await Promise.all([relay.close(), standins.close(), sshd.close(), new Promise((r) => publicUrl.close(r))]);
  };
}
