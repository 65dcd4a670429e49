/**
 * The local "VPS" for npm start and the e2e tests: a real SSH server on
 * 127.0.0.1 that accepts the keys the provider stand-in installs, plus the
 * coordinator vars that point deployments at it and at the relay/stand-ins.
 * The setup script then runs on this machine, in per-deployment directories.
 */
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { generateHostKey, isReadableKey } from "../../standins/ssh-vps";

/** The local VPS keeps its host key across restarts, like a real server (a changed key fails pinned deployments). */
export function localVpsHostKey(baseDir: string): string {
  const file = path.join(baseDir, "ssh_host_ed25519_key");
  // A key an older run kept that ssh2 cannot read (see generateHostKey) is replaced.
  if (!existsSync(file) || !isReadableKey(readFileSync(file, "utf8"))) {
    mkdirSync(baseDir, { recursive: true });
    writeFileSync(file, generateHostKey(), { mode: 0o600 });
  }
  return readFileSync(file, "utf8");
}

export interface LocalVpsPaths {
  baseDir: string;
  authorizedKeysFile: string;
  openclawBin: string;
}

/** Creates the directory layout and the OpenClaw stand-in executable. */
export function prepareLocalVps(baseDir: string): LocalVpsPaths {
  mkdirSync(baseDir, { recursive: true });
  const openclawBin = path.join(baseDir, "openclaw");
  // Stand-in for the OpenClaw CLI: `onboard` writes the config the setup script checks for.
  // A file named `slow-onboard` next to it makes onboarding take a while (tests that act during INSTALLING).
  writeFileSync(
    openclawBin,
    `#!/bin/bash\necho "openclaw stand-in: $*"\nif [ -f ${path.join(baseDir, "slow-onboard")} ]; then sleep 8; fi\nmkdir -p "$HOME/.openclaw" && echo '{"stand_in":true}' > "$HOME/.openclaw/openclaw.json"\n`,
  );
  chmodSync(openclawBin, 0o755);
  return { baseDir, authorizedKeysFile: path.join(baseDir, "authorized_keys"), openclawBin };
}

export interface DeployVarsInput {
  paths: LocalVpsPaths;
  coordinatorUrl: string;
  standinsUrl: string;
  relayUrl: string;
  sshPort: number;
  pollIntervalS?: number;
}

/** Coordinator vars (wrangler dev --var) for deployments against the local VPS. */
export function localDeployVars(i: DeployVarsInput): Record<string, string> {
  const per = (sub: string) => path.join(i.paths.baseDir, "vps/{deployment_id}", sub);
  return {
    VPS_PROVIDER: "local",
    STANDINS_URL: i.standinsUrl,
    RELAY_URL: i.relayUrl,
    PUBLIC_URL: i.coordinatorUrl,
    VPS_SSH_PORT: String(i.sshPort),
    SETUP_MARKER_DIR: per("markers"),
    SETUP_INSTALL_DIR: per("install"),
    SETUP_HOME_DIR: per("home"),
    OPENCLAW_BIN: i.paths.openclawBin,
    DEPLOY_POLL_INTERVAL_S: String(i.pollIntervalS ?? 5),
  };
}

/**
 * Stops what deployments started on this machine (the local "VPS"): setup scripts still running
 * (one may start its bot after a test has finished) and the bot clients, found by their paths.
 */
export function stopLocalVpsBots(baseDir: string): void {
  const vpsDir = path.join(baseDir, "vps");
  if (!existsSync(vpsDir)) return;
  spawnSync("pkill", ["-TERM", "-f", `${vpsDir}/`], { stdio: "ignore" });
}
