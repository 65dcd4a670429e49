/** Stage executors with in-memory fakes: the idempotence and intent rules of each stage. */
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { seal } from "../../src/crypto/seal";
import type { DeploymentPatch } from "../../src/db/deployments";
import type { DeploymentRow } from "../../src/db/schema";
import type { RelayClient } from "../../src/providers/relay";
import type { OpenRouterKeys, VpsProvider } from "../../src/providers/types";
import { createCtx } from "../../src/services/context";
import type { DeployDeps } from "../../src/services/deploy-deps";
import { STAGE_EXECUTORS } from "../../src/services/deployment-stages";

const SECRET = "unit-test-secret-key-0123456789";

function deployment(over: Partial<DeploymentRow> = {}): DeploymentRow {
  return {
    id: "dep-1",
    name: "d",
    provider: "local",
    region: "fsn1",
    plan: "cx22",
    status: "ORDERING",
    stage: null,
    error: null,
    stageStartedAt: 0,
    lastProgressAt: 0,
    transientErrors: 0,
    sshPublicKey: "ssh-ed25519 AAAA x",
    sshPrivateKeySealed: null,
    sshUsername: "root",
    sshPort: 22,
    hostKeySha256: null,
    openrouterKeyName: null,
    openrouterKeyHash: null,
    openrouterKeySealed: null,
    planId: null,
    vpsName: null,
    vpsOrderId: null,
    vpsServiceId: null,
    vpsIp: null,
    rebuildRequestedAt: null,
    rebuildActionId: null,
    botId: null,
    botTokenId: null,
    launchCount: 0,
    idempotencyKey: null,
    idempotencyHash: null,
    writeId: null,
    createdAt: 0,
    updatedAt: 0,
    finishedAt: null,
    ...over,
  };
}

function harness(parts: { provider?: Partial<VpsProvider>; openrouter?: Partial<OpenRouterKeys>; relay?: (req: any) => any }) {
  const calls: string[] = [];
  const intents: DeploymentPatch[] = [];
  const track = <T extends object>(name: string, impl: Partial<T>) =>
    new Proxy(impl as T, {
      get: (t, k) =>
        typeof (t as any)[k] === "function"
          ? (...a: unknown[]) => {
              calls.push(`${name}.${String(k)}`);
              return (t as any)[k](...a);
            }
          : (t as any)[k],
    });
  const deps = {
    config: {
      secretKey: SECRET,
      markerDir: "/root",
      installDir: "/opt/clawbot",
      sshPort: 22,
      sshUsername: "root",
      openrouterLimitUsd: 10,
    } as DeployDeps["config"],
    provider: track<VpsProvider>("provider", parts.provider ?? {}),
    openrouter: track<OpenRouterKeys>("openrouter", parts.openrouter ?? {}),
    relay: {
      run: async (req: any) => {
        calls.push(`relay.${req.op}`);
        return parts.relay?.(req);
      },
    } as unknown as RelayClient,
  } as DeployDeps;
  const stageEnv = {
    ctx: createCtx(env),
    deps,
    recordIntent: async (p: DeploymentPatch) => {
      calls.push("intent");
      intents.push(p);
    },
  };
  return { calls, intents, stageEnv };
}

describe("deployment stage executors", () => {
  it("an OpenRouter key that exists without its saved secret is deleted and recreated", async () => {
    const h = harness({
      openrouter: {
        findByName: async (name) => ({ hash: "old-hash", name }),
        delete: async () => undefined,
        create: async (name) => ({ hash: "new-hash", name, key: "sk-or-v1-new" }),
      },
    });
    const run = await STAGE_EXECUTORS.openrouter_key_created(deployment(), h.stageEnv);
    expect(h.calls).toEqual(["intent", "openrouter.findByName", "openrouter.delete", "openrouter.create"]);
    expect(h.intents[0]).toEqual({ openrouterKeyName: "clawbot-deployment-dep-1" });
    expect(run.outcome).toEqual({ kind: "done" });
    expect(run.patch!.openrouterKeyHash).toBe("new-hash");
    expect(run.patch!.openrouterKeySealed).toMatch(/^v1:/);
  });

  it("a saved key is kept: nothing is called", async () => {
    const h = harness({});
    const run = await STAGE_EXECUTORS.openrouter_key_created(
      deployment({ openrouterKeyName: "k", openrouterKeyHash: "h", openrouterKeySealed: "v1:x:y" }),
      h.stageEnv,
    );
    expect(run.outcome.kind).toBe("done");
    expect(h.calls).toEqual([]);
  });

  it("ordering writes the VPS name as intent before ordering, and never orders twice", async () => {
    const h = harness({ provider: { order: async () => ({ orderId: "o-1" }) } });
    const run = await STAGE_EXECUTORS.vps_ordered(deployment({ planId: "cx22" }), h.stageEnv);
    expect(h.calls).toEqual(["intent", "provider.order"]);
    expect(h.intents[0]).toEqual({ vpsName: "clawbot-dep-1" });
    expect(run.patch).toEqual({ vpsOrderId: "o-1" });
    const again = harness({});
    expect((await STAGE_EXECUTORS.vps_ordered(deployment({ vpsOrderId: "o-1" }), again.stageEnv)).outcome.kind).toBe("done");
    expect(again.calls).toEqual([]);
  });

  it("delivery polls the order's associated service; a failed order fails the deployment", async () => {
    const pending = harness({ provider: { orderState: async () => ({ state: "pending" as const }) } });
    expect((await STAGE_EXECUTORS.vps_delivered(deployment({ vpsOrderId: "o" }), pending.stageEnv)).outcome).toEqual({
      kind: "waiting",
      progressed: false,
    });
    const failed = harness({ provider: { orderState: async () => ({ state: "failed" as const, reason: "out of stock" }) } });
    expect((await STAGE_EXECUTORS.vps_delivered(deployment({ vpsOrderId: "o" }), failed.stageEnv)).outcome).toEqual({
      kind: "failed",
      error: "order o failed: out of stock",
    });
  });

  it("the rebuild starts once, forgets the old host key pin, then polls its action", async () => {
    const h = harness({ provider: { rebuild: async () => ({ actionId: "a-1" }), actionState: async () => "pending" as const } });
    const start = await STAGE_EXECUTORS.vps_rebuilt(deployment({ vpsServiceId: "s", hostKeySha256: "old" }), h.stageEnv);
    expect(start).toEqual({ outcome: { kind: "waiting", progressed: true }, patch: { rebuildActionId: "a-1", hostKeySha256: null } });
    const poll = await STAGE_EXECUTORS.vps_rebuilt(deployment({ vpsServiceId: "s", rebuildActionId: "a-1" }), h.stageEnv);
    expect(poll.outcome.kind).toBe("waiting");
    expect(h.calls).toEqual(["intent", "provider.rebuild", "provider.actionState"]);
  });

  it("the rebuild's intent is recorded before it is issued; a resumed stage waits on the rebuild it finds instead of issuing another", async () => {
    const fresh = harness({ provider: { rebuild: async () => ({ actionId: "a-1" }) } });
    const run = await STAGE_EXECUTORS.vps_rebuilt(deployment({ vpsServiceId: "s" }), fresh.stageEnv);
    expect(fresh.calls).toEqual(["intent", "provider.rebuild"]); // no intent yet: nothing to look for
    expect(fresh.intents).toEqual([{ rebuildRequestedAt: expect.any(Number) }]);
    expect(run.patch).toEqual({ rebuildActionId: "a-1", hostKeySha256: null });

    // Crashed after the rebuild was issued, before its action id was saved: found at the provider.
    const sinceMs: number[] = [];
    const resumed = harness({
      provider: {
        findRebuild: async (_s, since) => {
          sinceMs.push(since);
          return { actionId: "a-1" };
        },
      },
    });
    const again = await STAGE_EXECUTORS.vps_rebuilt(deployment({ vpsServiceId: "s", rebuildRequestedAt: 5_000 }), resumed.stageEnv);
    expect(resumed.calls).toEqual(["provider.findRebuild"]);
    expect(sinceMs).toEqual([5_000]);
    expect(again).toEqual({ outcome: { kind: "waiting", progressed: true }, patch: { rebuildActionId: "a-1", hostKeySha256: null } });

    // Crashed before the request reached the provider: nothing found, so it is issued (with a fresh intent).
    const lost = harness({ provider: { findRebuild: async () => null, rebuild: async () => ({ actionId: "a-2" }) } });
    const issued = await STAGE_EXECUTORS.vps_rebuilt(deployment({ vpsServiceId: "s", rebuildRequestedAt: 5_000 }), lost.stageEnv);
    expect(lost.calls).toEqual(["provider.findRebuild", "intent", "provider.rebuild"]);
    expect(issued.patch).toEqual({ rebuildActionId: "a-2", hostKeySha256: null });
  });

  it("setup_complete: an error marker fails, a complete marker waits for the bot to be online", async () => {
    const sealed = await seal(SECRET, "KEY", "dep-1");
    const d = deployment({ sshPrivateKeySealed: sealed, vpsIp: "203.0.113.5", hostKeySha256: "pin", botId: "no-such-bot" });
    const markers = (m: Record<string, string | null>) => ({
      op: "read_markers",
      markers: { started: "STARTED", progress: null, complete: null, error: null, token: null, ...m },
    });
    const errored = harness({ relay: () => markers({ error: "FAILED: line 3: apt-get" }) });
    expect((await STAGE_EXECUTORS.setup_complete(d, errored.stageEnv)).outcome).toEqual({
      kind: "failed",
      error: "setup script failed: FAILED: line 3: apt-get",
    });
    const complete = harness({
      relay: (req) => {
        expect(req.host_key_sha256).toBe("pin");
        return markers({ complete: "COMPLETE" });
      },
    });
    expect((await STAGE_EXECUTORS.setup_complete(d, complete.stageEnv)).outcome.kind).toBe("waiting");
  });
});
