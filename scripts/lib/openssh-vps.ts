/**
 * OpenSSH `sshd` on 127.0.0.1 as the "VPS" for the e2e tests (installed by
 * .ci/run with apt-get install openssh-server). Public-key login as root with
 * the keys the provider stand-in writes to `authorizedKeysFile`.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import path from "node:path";

export const SSHD_BIN = "/usr/sbin/sshd";

export interface OpenSshVps {
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** `freshHostKey`: replace the host key first (a reinstalled or impersonated server). */
export async function startOpenSshVps(dir: string, port: number, authorizedKeysFile: string, freshHostKey = false): Promise<OpenSshVps> {
  if (!existsSync(SSHD_BIN)) throw new Error(`${SSHD_BIN} not found: install openssh-server (.ci/run does)`);
  mkdirSync(dir, { recursive: true });
  mkdirSync("/run/sshd", { recursive: true }); // privilege separation directory
  const hostKey = path.join(dir, "ssh_host_ed25519_key");
  if (freshHostKey) for (const f of [hostKey, `${hostKey}.pub`]) if (existsSync(f)) rmSync(f);
  if (!existsSync(hostKey)) spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey], { stdio: "ignore" });
  const config = path.join(dir, "sshd_config");
  writeFileSync(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${path.join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorizedKeysFile}`,
      "PermitRootLogin prohibit-password",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "LogLevel VERBOSE",
      "",
    ].join("\n"),
  );
  const check = spawnSync(SSHD_BIN, ["-t", "-f", config], { encoding: "utf8" });
  if (check.status !== 0) throw new Error(`sshd config rejected: ${check.stderr}`);
  const child = spawn(SSHD_BIN, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr!.on("data", (d) => (log = (log + d).slice(-20_000)));
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const sock = createConnection({ host: "127.0.0.1", port }, () => {
        sock.destroy();
        resolve(true);
      });
      sock.once("error", () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`sshd did not start: ${log}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    process: child,
    async stop() {
      child.kill("SIGTERM");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
    },
  };
}
