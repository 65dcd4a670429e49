/**
 * What a deployment talks to, chosen by configuration: the VPS provider
 * (`local` stand-in, `hetzner`, `ovh`), OpenRouter (real or stand-in URL) and
 * the SSH relay (a local URL in dev, the RelayContainer in production).
 */
import { getContainer } from "@cloudflare/containers";
import { HetznerProvider } from "../providers/hetzner";
import { OpenRouterKeysApi } from "../providers/openrouter";
import { OvhProvider } from "../providers/ovh";
import { RelayClient } from "../providers/relay";
import type { OpenRouterKeys, VpsProvider } from "../providers/types";

export interface DeployConfig {
  provider: "local" | "hetzner" | "ovh";
  /** The coordinator's URL as the VPS sees it (bot download, callback, bot connection). */
  publicUrl: string;
  secretKey: string;
  pollIntervalMs: number;
  setupTimeoutMs: number;
  sshPort: number;
  sshUsername: string;
  markerDir: string;
  installDir: string;
  openclawBin: string;
  /** Local dev and tests only (the "VPS" is this machine): HOME for the setup script. */
  homeDir: string | null;
  /** Spending limit of each deployment's OpenRouter key; NaN when the variable is malformed (see deployConfigProblem). */
  openrouterLimitUsd: number;
}

export interface DeployDeps {
  config: DeployConfig;
  provider: VpsProvider;
  openrouter: OpenRouterKeys;
  relay: RelayClient;
}

const num = (v: string | undefined, fallback: number) => (v !== undefined && v !== "" && Number.isFinite(Number(v)) ? Number(v) : fallback);

/** Every deployment's OpenRouter key is capped unless configured otherwise: a leaked key cannot run up a bill. */
export const DEFAULT_OPENROUTER_LIMIT_USD = 10;

/** What makes deployments unsafe to start with this configuration; null when it is fine. */
export function deployConfigProblem(config: DeployConfig): string | null {
  if (config.secretKey.length < 16) return "set the DEPLOY_SECRET_KEY secret (16+ characters)";
  if (config.provider !== "local" && !config.publicUrl.startsWith("https://")) {
    return `PUBLIC_URL must be https:// (bot tokens and the bot client travel over it); it is ${config.publicUrl}`;
  }
  if (!Number.isFinite(config.openrouterLimitUsd) || config.openrouterLimitUsd <= 0) {
    return "OPENROUTER_KEY_LIMIT_USD must be a positive number of US dollars";
  }
  return null;
}

export function readDeployConfig(env: Env): DeployConfig {
  const provider = env.VPS_PROVIDER === "hetzner" || env.VPS_PROVIDER === "ovh" ? env.VPS_PROVIDER : "local";
  return {
    provider,
    publicUrl: (env.PUBLIC_URL ?? "http://127.0.0.1:8787").replace(/\/$/, ""),
    secretKey: env.DEPLOY_SECRET_KEY ?? "",
    pollIntervalMs: num(env.DEPLOY_POLL_INTERVAL_S, 30) * 1000,
    setupTimeoutMs: num(env.SETUP_TIMEOUT_S, 20 * 60) * 1000,
    sshPort: num(env.VPS_SSH_PORT, 22),
    sshUsername: env.VPS_SSH_USERNAME || "root",
    markerDir: env.SETUP_MARKER_DIR || "/root",
    installDir: env.SETUP_INSTALL_DIR || "/opt/clawbot",
    openclawBin: env.OPENCLAW_BIN || "openclaw",
    homeDir: env.SETUP_HOME_DIR || null,
    openrouterLimitUsd: env.OPENROUTER_KEY_LIMIT_USD === undefined ? DEFAULT_OPENROUTER_LIMIT_USD : Number(env.OPENROUTER_KEY_LIMIT_USD),
  };
}

/** The local stand-ins' fixed credentials (see standins/server.ts). */
const STANDIN_CREDENTIALS = { hetzner: "standin-hetzner-token", openrouter: "standin-openrouter-provisioning-key" };

export function createDeployDeps(env: Env, deploymentId: string): DeployDeps {
  const base = readDeployConfig(env);
  // `{deployment_id}` in the setup directories keeps deployments apart where several share one host (tests, local dev).
  const perDeployment = (dir: string) => dir.replaceAll("{deployment_id}", deploymentId);
  const config = {
    ...base,
    markerDir: perDeployment(base.markerDir),
    installDir: perDeployment(base.installDir),
    homeDir: base.homeDir && perDeployment(base.homeDir),
  };
  const standins = (env.STANDINS_URL ?? "http://127.0.0.1:8788").replace(/\/$/, "");
  let provider: VpsProvider;
  if (config.provider === "hetzner") provider = new HetznerProvider({ token: env.HETZNER_TOKEN ?? "", baseUrl: env.PROVIDER_API_URL });
  else if (config.provider === "ovh") {
    provider = new OvhProvider({
      appKey: env.OVH_APP_KEY ?? "",
      appSecret: env.OVH_APP_SECRET ?? "",
      consumerKey: env.OVH_CONSUMER_KEY ?? "",
      baseUrl: env.PROVIDER_API_URL,
    });
  } else provider = new HetznerProvider({ token: STANDIN_CREDENTIALS.hetzner, baseUrl: `${standins}/hetzner/v1` });
  const openrouter = env.OPENROUTER_PROVISIONING_KEY
    ? new OpenRouterKeysApi({ provisioningKey: env.OPENROUTER_PROVISIONING_KEY, baseUrl: env.OPENROUTER_API_URL })
    : new OpenRouterKeysApi({ provisioningKey: STANDIN_CREDENTIALS.openrouter, baseUrl: `${standins}/openrouter/api/v1` });
  const relayUrl = env.RELAY_URL ? new URL("/v1/ops", env.RELAY_URL).toString() : null;
  const sendToRelay = (init: RequestInit) =>
    relayUrl ? fetch(relayUrl, init) : getContainer(env.RELAY, deploymentId).fetch(new Request("http://relay/v1/ops", init));
  return { config, provider, openrouter, relay: new RelayClient(env.RELAY_SECRET ?? "", sendToRelay) };
}
