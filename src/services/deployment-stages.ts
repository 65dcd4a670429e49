/**
 * One executor per provisioning stage. Each is idempotent: it looks at what
 * the deployment row already records (and, for paid or external actions, what
 * the provider already has under our name) before doing anything, and it
 * records its intent before acting. Executors return a StageOutcome for the
 * pure machine plus the columns to write.
 */
import type { RelayResult } from "../contracts/relay";
import type { DeploymentStage, StageOutcome } from "../core/deployment-machine";
import { buildSetupScript } from "../core/setup-script";
import { hmacSha256Hex, utf8ToBase64 } from "../crypto/encoding";
import { timeOrderedId } from "../crypto/ids";
import { open, seal } from "../crypto/seal";
import { generateSshKeyPair } from "../crypto/ssh-keys";
import { getBot, issueLaunchToken } from "../db/bots";
import type { DeploymentPatch } from "../db/deployments";
import type { DeploymentRow } from "../db/schema";
import { mintToken } from "../db/tokens";
import { BOT_BUNDLE_SHA256 } from "../generated/bot-bundle";
import { ProviderError } from "../providers/http";
import type { Ctx } from "./context";
import type { DeployDeps } from "./deploy-deps";
import { closeSocketsOf } from "./tokens";

export interface StageRun {
  outcome: StageOutcome;
  patch?: DeploymentPatch;
  /** Detail for the stage's log line (what was found or created). */
  log?: string;
}

export interface StageEnv {
  ctx: Ctx;
  deps: DeployDeps;
  /** Persists an intent record before an external action. */
  recordIntent(patch: DeploymentPatch): Promise<void>;
}

const done = (patch?: DeploymentPatch, log?: string): StageRun => ({ outcome: { kind: "done" }, patch, log });
const waiting = (patch?: DeploymentPatch, progressed = false): StageRun => ({ outcome: { kind: "waiting", progressed }, patch });
const failed = (error: string): StageRun => ({ outcome: { kind: "failed", error } });

const vpsNameFor = (d: Pick<DeploymentRow, "id">) => `clawbot-${d.id}`;
const openrouterKeyNameFor = (d: Pick<DeploymentRow, "id">) => `clawbot-deployment-${d.id}`;

/** Token the setup script presents to the callback: bound to the deployment and to this launch. */
export function callbackToken(secretKey: string, deploymentId: string, launch: number): Promise<string> {
  return hmacSha256Hex(secretKey, `setup-callback:${deploymentId}:${launch}`);
}

/** Where the relay connects, before the host key is known (the readiness check pins it). */
async function unpinnedTarget(d: DeploymentRow, env: StageEnv) {
  if (!d.sshPrivateKeySealed || !d.vpsIp) throw new Error("missing SSH key or VPS IP");
  return {
    deployment_id: d.id,
    host: d.vpsIp,
    port: d.sshPort,
    username: d.sshUsername,
    private_key: await open(env.deps.config.secretKey, d.sshPrivateKeySealed, d.id),
    host_key_sha256: null,
  };
}

/** Every later operation talks only to the host key pinned at ssh_ready. */
async function pinnedTarget(d: DeploymentRow, env: StageEnv) {
  if (!d.hostKeySha256) throw new Error("the VPS host key is not pinned yet");
  return { ...(await unpinnedTarget(d, env)), host_key_sha256: d.hostKeySha256 };
}

export const STAGE_EXECUTORS: Record<DeploymentStage, (d: DeploymentRow, env: StageEnv) => Promise<StageRun>> = {
  async ssh_key_generated(d, env) {
    if (d.sshPrivateKeySealed && d.sshPublicKey) return done();
    const pair = await generateSshKeyPair(vpsNameFor(d));
    return done(
      { sshPublicKey: pair.publicKeyLine, sshPrivateKeySealed: await seal(env.deps.config.secretKey, pair.privateKeyPem, d.id) },
      `SSH key ${pair.fingerprint}`,
    );
  },

  async openrouter_key_created(d, env) {
    const name = d.openrouterKeyName ?? openrouterKeyNameFor(d);
    if (!d.openrouterKeyName) await env.recordIntent({ openrouterKeyName: name });
    if (d.openrouterKeyHash && d.openrouterKeySealed) return done();
    const existing = await env.deps.openrouter.findByName(name);
    if (existing) {
      // OpenRouter shows a key's secret only at creation: without it saved, the key is useless to us.
      await env.deps.openrouter.delete(existing.hash);
    }
    const created = await env.deps.openrouter.create(name, env.deps.config.openrouterLimitUsd);
    return done(
      { openrouterKeyHash: created.hash, openrouterKeySealed: await seal(env.deps.config.secretKey, created.key, d.id) },
      `OpenRouter key ${name}`,
    );
  },

  async plan_found(d, env) {
    const plan = await env.deps.provider.findPlan({ region: d.region, plan: d.plan });
    return done({ planId: plan.id }, `plan ${plan.id} (${plan.description}) in ${d.region}`);
  },

  async vps_ordered(d, env) {
    if (d.vpsOrderId) return done();
    const name = d.vpsName ?? vpsNameFor(d);
    if (!d.vpsName) await env.recordIntent({ vpsName: name });
    const { orderId } = await env.deps.provider.order({
      planId: d.planId ?? d.plan,
      region: d.region,
      name,
      sshPublicKey: d.sshPublicKey!,
    });
    return done({ vpsOrderId: orderId }, `order ${orderId} placed`);
  },

  async vps_delivered(d, env) {
    if (d.vpsServiceId) return done();
    const state = await env.deps.provider.orderState(d.vpsOrderId!);
    if (state.state === "delivered") return done({ vpsServiceId: state.serviceId }, `service ${state.serviceId} delivered`);
    if (state.state === "failed") return failed(`order ${d.vpsOrderId} failed: ${state.reason}`);
    return waiting();
  },

  async vps_ip_acquired(d, env) {
    const server = await env.deps.provider.getServer(d.vpsServiceId!);
    return server.ip
      ? done({ vpsIp: server.ip, sshPort: env.deps.config.sshPort, sshUsername: env.deps.config.sshUsername }, `IP ${server.ip}`)
      : waiting();
  },

  async vps_rebuilt(d, env) {
    if (!d.rebuildActionId) {
      // The rebuild changes the host key: forget any pin (it is set again at ssh_ready).
      const forget = { hostKeySha256: null };
      // Issued before a crash that lost its action id: wait on that one, do not reinstall twice.
      const issued = d.rebuildRequestedAt !== null ? await env.deps.provider.findRebuild(d.vpsServiceId!, d.rebuildRequestedAt) : null;
      if (issued) return waiting({ rebuildActionId: issued.actionId, ...forget }, true);
      await env.recordIntent({ rebuildRequestedAt: env.ctx.now() });
      const { actionId } = await env.deps.provider.rebuild(d.vpsServiceId!, d.sshPublicKey!, d.vpsName ?? vpsNameFor(d));
      return waiting({ rebuildActionId: actionId, ...forget }, true);
    }
    const state = await env.deps.provider.actionState(d.vpsServiceId!, d.rebuildActionId);
    if (state === "done") return done(undefined, "OS rebuilt with our SSH key");
    if (state === "failed") return failed(`rebuild ${d.rebuildActionId} failed`);
    return waiting();
  },

  async ssh_ready(d, env) {
    try {
      const res = await env.deps.relay.run<Extract<RelayResult, { op: "check_ready" }>>({
        op: "check_ready",
        ...(await unpinnedTarget(d, env)),
      });
      return done({ hostKeySha256: res.host_key_sha256 }, `SSH ready; host key SHA256:${res.host_key_sha256} pinned`);
    } catch (err) {
      if (err instanceof ProviderError && err.transient) return waiting(); // sshd not up yet after the rebuild
      throw err;
    }
  },

  async setup_script_launched(d, env) {
    const { ctx, deps } = env;
    const nowMs = ctx.now();
    // The deployment's bot: registered once, with a fresh token at every launch (the previous one revoked).
    const botId = d.botId ?? timeOrderedId();
    const launch = d.launchCount + 1;
    const { secret: botToken, row: tokenRow } = await mintToken("bot", `bot:${d.name}`, botId, nowMs);
    const register = d.botId
      ? null
      : { id: botId, name: d.name, capabilities: ["openclaw"], metadata: { deployment_id: d.id }, createdAt: nowMs, updatedAt: nowMs };
    await issueLaunchToken(ctx.db, { id: botId, register }, tokenRow, nowMs);
    // The previous launch's bot (if it still runs) loses its socket with its token.
    if (d.botTokenId) await closeSocketsOf(ctx, { id: d.botTokenId, kind: "bot", botId });
    await env.recordIntent({ botId, botTokenId: tokenRow.id, launchCount: launch });

    const script = buildSetupScript({
      deploymentId: d.id,
      coordinatorUrl: deps.config.publicUrl,
      callbackUrl: `${deps.config.publicUrl}/api/v1/deployments/${d.id}/callback`,
      callbackToken: await callbackToken(deps.config.secretKey, d.id, launch),
      botId,
      botToken,
      openrouterKey: await open(deps.config.secretKey, d.openrouterKeySealed!, d.id),
      markerDir: deps.config.markerDir,
      installDir: deps.config.installDir,
      openclawBin: deps.config.openclawBin,
      botCapabilities: ["openclaw"],
      botBundleSha256: BOT_BUNDLE_SHA256,
      homeDir: deps.config.homeDir,
    });
    const target = await pinnedTarget({ ...d, botId }, env);
    const scriptPath = `${deps.config.installDir}/openclaw-setup.sh`;
    await deps.relay.run({ op: "upload_script", ...target, path: scriptPath, script_b64: utf8ToBase64(script) });
    await deps.relay.run({ op: "launch_detached", ...target, path: scriptPath, log_path: `${deps.config.installDir}/openclaw-setup.log` });
    return done(undefined, `setup script launched (launch ${launch})`);
  },

  async setup_complete(d, env) {
    const res = await env.deps.relay.run<Extract<RelayResult, { op: "read_markers" }>>({
      op: "read_markers",
      ...(await pinnedTarget(d, env)),
      marker_dir: env.deps.config.markerDir,
    });
    const m = res.markers;
    if (m.error) return failed(`setup script failed: ${m.error}`);
    if (!m.complete) return waiting();
    // Ready means the installed bot is connected to us, not just that the script ended.
    const bot = d.botId ? await getBot(env.ctx.db, d.botId) : undefined;
    return bot?.connected ? done(undefined, `bot ${d.botId} online`) : waiting();
  },
};
