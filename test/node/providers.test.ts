/** The real provider adapters against local stand-ins that follow each provider's documented API. */
import { createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HetznerProvider } from "../../src/providers/hetzner";
import { ProviderError } from "../../src/providers/http";
import { OpenRouterKeysApi } from "../../src/providers/openrouter";
import { OvhProvider } from "../../src/providers/ovh";
import { type RunningStandins, STANDIN_DEFAULTS, startStandins } from "../../standins/server";

let standins: RunningStandins;
beforeAll(async () => {
  standins = await startStandins({ vpsIp: "127.0.0.1", deliveryDelayMs: 300, actionDelayMs: 300 });
});
afterAll(() => standins.close());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDz8c0xYq8k3Qm9cYk8m0cJ8Jm0xY2l1bW9vYmF6cXV4IGZvbw== test";

describe("Hetzner adapter", () => {
  const hetzner = () => new HetznerProvider({ token: STANDIN_DEFAULTS.hetznerToken, baseUrl: `${standins.url}/hetzner/v1` });

  it("finds plans, refuses unknown plans and regions (not retryable)", async () => {
    expect(await hetzner().findPlan({ plan: "cx22", region: "fsn1" })).toEqual({ id: "cx22", description: "CX22" });
    await expect(hetzner().findPlan({ plan: "cx999", region: "fsn1" })).rejects.toMatchObject({ transient: false });
    await expect(hetzner().findPlan({ plan: "cx32", region: "hel1" })).rejects.toThrow(/not offered/);
  });

  it("an order whose earlier request landed late (a crash, a retry) finds that server instead of failing on the name", async () => {
    const p = hetzner();
    const setLatency = (body: Record<string, number>) =>
      fetch(`${standins.url}/_standin/latency`, { method: "POST", body: JSON.stringify(body) });
    await setLatency({ "POST /hetzner/v1/servers": 300 });
    try {
      // Both look the name up before either create lands; the second create meets 409 uniqueness_error.
      const [a, b] = await Promise.all([
        p.order({ planId: "cx22", region: "fsn1", name: "dep-race", sshPublicKey: KEY }),
        sleep(50).then(() => p.order({ planId: "cx22", region: "fsn1", name: "dep-race", sshPublicKey: KEY })),
      ]);
      expect(b.orderId).toBe(a.orderId);
      expect(standins.store.state.hetzner.servers.filter((s) => s.name === "dep-race")).toHaveLength(1);
      expect(standins.store.state.hetzner.sshKeys.filter((k) => k.name === "dep-race")).toHaveLength(1);
    } finally {
      await setLatency({});
    }
  });

  it("orders once per name, however often the stage runs, then rebuilds and destroys", async () => {
    const p = hetzner();
    const first = await p.order({ planId: "cx22", region: "fsn1", name: "dep-h1", sshPublicKey: KEY });
    const again = await p.order({ planId: "cx22", region: "fsn1", name: "dep-h1", sshPublicKey: KEY });
    expect(again.orderId).toBe(first.orderId);
    expect(standins.store.state.hetzner.servers.filter((s) => s.name === "dep-h1")).toHaveLength(1);
    expect(standins.store.state.hetzner.sshKeys.filter((k) => k.name === "dep-h1")).toHaveLength(1);

    expect(await p.orderState(first.orderId)).toEqual({ state: "delivered", serviceId: first.orderId });
    expect(await p.getServer(first.orderId)).toMatchObject({ ip: "127.0.0.1", status: "running" });
    const beforeRebuildMs = Date.now();
    expect(await p.findRebuild(first.orderId, beforeRebuildMs)).toBeNull(); // only the create action so far
    const { actionId } = await p.rebuild(first.orderId, KEY, "dep-h1");
    // A stage resumed after a crash that lost the action id finds the rebuild it issued.
    expect(await p.findRebuild(first.orderId, beforeRebuildMs)).toEqual({ actionId });
    expect(await p.findRebuild(first.orderId, Date.now() + 120_000)).toBeNull(); // older than the intent: not ours
    expect(await p.actionState(first.orderId, actionId)).toBe("pending");
    await sleep(350);
    expect(await p.actionState(first.orderId, actionId)).toBe("done");
    await p.destroy(first.orderId);
    await p.destroy(first.orderId); // already gone: still fine
    await p.deleteSshKey("dep-h1");
    await p.deleteSshKey("dep-h1"); // already gone: still fine
    expect(standins.store.state.hetzner.sshKeys.filter((k) => k.name === "dep-h1")).toHaveLength(0);
    expect(await p.orderState(first.orderId)).toMatchObject({ state: "failed" });
  });

  it("a wrong token is a non-retryable 401", async () => {
    const bad = new HetznerProvider({ token: "nope", baseUrl: `${standins.url}/hetzner/v1` });
    const err = await bad.findPlan({ plan: "cx22", region: "fsn1" }).catch((e) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ status: 401, transient: false });
  });
});

describe("OVH adapter", () => {
  const ovh = (over: Partial<typeof STANDIN_DEFAULTS.ovh> = {}) =>
    new OvhProvider({ ...STANDIN_DEFAULTS.ovh, ...over, baseUrl: `${standins.url}/ovh/1.0` });

  it("signs every request (the stand-in verifies the signature)", async () => {
    expect(await ovh().findPlan({ plan: "vps-le-2-2-40", region: "GRA" })).toEqual({ id: "vps-le-2-2-40", description: "VPS Le 2-2-40" });
    await expect(ovh({ appSecret: "wrong" }).findPlan({ plan: "vps-le-2-2-40", region: "GRA" })).rejects.toMatchObject({
      status: 403,
      transient: false,
    });
    await expect(ovh().findPlan({ plan: "vps-le-2-2-40", region: "WAW" })).rejects.toThrow(/not offered/);
  });

  it("orders through a cart once per name; the delivered VPS is the order's associated object", async () => {
    const p = ovh();
    const { orderId } = await p.order({ planId: "vps-le-2-2-40", region: "GRA", name: "dep-o1", sshPublicKey: KEY });
    expect((await p.order({ planId: "vps-le-2-2-40", region: "GRA", name: "dep-o1", sshPublicKey: KEY })).orderId).toBe(orderId);
    expect(standins.store.state.ovh.orders.filter((o) => o.description === "dep-o1")).toHaveLength(1);
    expect(await p.orderState(orderId)).toEqual({ state: "pending" });
    await sleep(350);
    const delivered = await p.orderState(orderId);
    expect(delivered).toEqual({ state: "delivered", serviceId: `vps-${orderId}.vps.ovh.net` });
    const serviceId = (delivered as { serviceId: string }).serviceId;
    expect(await p.getServer(serviceId)).toEqual({ serviceId, ip: "127.0.0.1", status: "running" });
    const beforeRebuildMs = Date.now();
    expect(await p.findRebuild(serviceId, beforeRebuildMs)).toBeNull();
    const { actionId } = await p.rebuild(serviceId, KEY, "dep-o1");
    expect(await p.findRebuild(serviceId, beforeRebuildMs)).toEqual({ actionId });
    expect(await p.findRebuild(serviceId, Date.now() + 120_000)).toBeNull();
    expect(await p.actionState(serviceId, actionId)).toBe("pending");
    await sleep(350);
    expect(await p.actionState(serviceId, actionId)).toBe("done");
    await p.destroy(serviceId);
    await p.destroy(serviceId);
  });
});

describe("OpenRouter keys adapter", () => {
  const api = (key = STANDIN_DEFAULTS.openrouterKey) =>
    new OpenRouterKeysApi({ provisioningKey: key, baseUrl: `${standins.url}/openrouter/api/v1` });

  it("creates (secret returned once), finds by name, deletes idempotently", async () => {
    const created = await api().create("clawbot-dep-1", 5);
    expect(created.key).toMatch(/^sk-or-v1-/);
    expect(await api().findByName("clawbot-dep-1")).toEqual({ hash: created.hash, name: "clawbot-dep-1" });
    expect(await api().findByName("missing")).toBeNull();
    await api().delete(created.hash);
    await api().delete(created.hash);
    expect(await api().findByName("clawbot-dep-1")).toBeNull();
    await expect(api("bad").findByName("x")).rejects.toMatchObject({ status: 401, transient: false });
  });
});

describe("transport errors", () => {
  it("5xx, 429 and refused connections are retryable", async () => {
    let status = 503;
    const srv = createServer((_req, res) => {
      res.writeHead(status);
      res.end("{}");
    });
    await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(srv.address() as { port: number }).port}`;
    const p = new HetznerProvider({ token: "t", baseUrl: url });
    await expect(p.getServer("1")).rejects.toMatchObject({ status: 503, transient: true });
    status = 429;
    await expect(p.getServer("1")).rejects.toMatchObject({ status: 429, transient: true });
    await new Promise((r) => srv.close(r));
    await expect(p.getServer("1")).rejects.toMatchObject({ transient: true, status: null });
  });
});
