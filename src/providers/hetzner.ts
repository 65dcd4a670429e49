/**
 * Hetzner Cloud (api.hetzner.cloud/v1). Ordering is creating a server: it is
 * "delivered" at once, and found again by its name. Rebuild keeps the SSH
 * keys given at creation, so the key is registered and attached up front.
 */
import { ignoreNotFound, ProviderError, requestJson } from "./http";
import {
  type ActionState,
  type OrderRequest,
  type OrderState,
  type Plan,
  type PlanChoice,
  PROVIDER_CLOCK_SKEW_MS,
  type Server,
  type VpsProvider,
} from "./types";

interface HServer {
  id: number;
  name: string;
  status: string;
  public_net: { ipv4: { ip: string } | null };
}

export interface HetznerOptions {
  token: string;
  baseUrl?: string;
  image?: string;
  fetchImpl?: typeof fetch;
}

/**
 * Creates a named resource; if the name is already taken (409: an earlier
 * request of ours, cut off by a crash, landed after we looked), it is ours,
 * so it is looked up by name instead of failing the stage.
 */
async function createOrFind<T>(create: () => Promise<T>, find: () => Promise<T | null>): Promise<T> {
  try {
    return await create();
  } catch (err) {
    if (!(err instanceof ProviderError && err.status === 409)) throw err;
    const existing = await find();
    if (existing === null) throw err;
    return existing;
  }
}

export class HetznerProvider implements VpsProvider {
  readonly name = "hetzner";
  private readonly baseUrl: string;
  private readonly image: string;

  constructor(private readonly opts: HetznerOptions) {
    this.baseUrl = (opts.baseUrl ?? "https://api.hetzner.cloud/v1").replace(/\/$/, "");
    this.image = opts.image ?? "ubuntu-24.04";
  }

  private call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    return requestJson<T>(
      { method, url: `${this.baseUrl}${path}`, headers: { Authorization: `Bearer ${this.opts.token}` }, body },
      this.opts.fetchImpl,
    );
  }

  async findPlan({ plan, region }: PlanChoice): Promise<Plan> {
    const res = await this.call<{ server_types: { id: number; name: string; description: string; prices: { location: string }[] }[] }>(
      "GET",
      `/server_types?name=${encodeURIComponent(plan)}`,
    );
    const type = res.server_types.find((t) => t.name === plan);
    if (!type) throw new ProviderError(`no Hetzner server type '${plan}'`, false);
    if (type.prices.length && !type.prices.some((p) => p.location === region)) {
      throw new ProviderError(`server type '${plan}' is not offered in '${region}'`, false);
    }
    return { id: type.name, description: type.description };
  }

  private async sshKeyByName(name: string): Promise<number | null> {
    const found = await this.call<{ ssh_keys: { id: number; name: string }[] }>("GET", `/ssh_keys?name=${encodeURIComponent(name)}`);
    return found.ssh_keys.find((k) => k.name === name)?.id ?? null;
  }

  private async ensureSshKey(name: string, publicKey: string): Promise<number> {
    return (
      (await this.sshKeyByName(name)) ??
      createOrFind(
        async () => (await this.call<{ ssh_key: { id: number } }>("POST", "/ssh_keys", { name, public_key: publicKey })).ssh_key.id,
        () => this.sshKeyByName(name),
      )
    );
  }

  private async serverByName(name: string): Promise<HServer | null> {
    const res = await this.call<{ servers: HServer[] }>("GET", `/servers?name=${encodeURIComponent(name)}`);
    return res.servers.find((s) => s.name === name) ?? null;
  }

  async order({ planId, region, name, sshPublicKey }: OrderRequest) {
    const existing = await this.serverByName(name);
    if (existing) return { orderId: String(existing.id) };
    const keyId = await this.ensureSshKey(name, sshPublicKey);
    const id = await createOrFind(
      async () => {
        const body = {
          name,
          server_type: planId,
          location: region,
          image: this.image,
          ssh_keys: [keyId],
          labels: { "managed-by": "clawbot-coordinator" },
        };
        return (await this.call<{ server: HServer }>("POST", "/servers", body)).server.id;
      },
      async () => (await this.serverByName(name))?.id ?? null,
    );
    return { orderId: String(id) };
  }

  async orderState(orderId: string): Promise<OrderState> {
    try {
      await this.getServer(orderId);
      return { state: "delivered", serviceId: orderId };
    } catch (err) {
      if (err instanceof ProviderError && err.status === 404) return { state: "failed", reason: `server ${orderId} no longer exists` };
      throw err;
    }
  }

  async getServer(serviceId: string): Promise<Server> {
    const { server } = await this.call<{ server: HServer }>("GET", `/servers/${encodeURIComponent(serviceId)}`);
    return { serviceId: String(server.id), ip: server.public_net.ipv4?.ip ?? null, status: server.status };
  }

  /** Hetzner's rebuild keeps the SSH keys attached at creation (see order()). */
  async rebuild(serviceId: string, _sshPublicKey: string, _keyName: string): Promise<{ actionId: string }> {
    const res = await this.call<{ action: { id: number } }>("POST", `/servers/${encodeURIComponent(serviceId)}/actions/rebuild`, {
      image: this.image,
    });
    return { actionId: String(res.action.id) };
  }

  async findRebuild(serviceId: string, sinceMs: number): Promise<{ actionId: string } | null> {
    const { actions } = await this.call<{ actions: { id: number; command: string; started: string }[] }>(
      "GET",
      `/servers/${encodeURIComponent(serviceId)}/actions?sort=id:desc&per_page=25`,
    );
    const found = actions.find((a) => a.command === "rebuild_server" && Date.parse(a.started) >= sinceMs - PROVIDER_CLOCK_SKEW_MS);
    return found ? { actionId: String(found.id) } : null;
  }

  async actionState(_serviceId: string, actionId: string): Promise<ActionState> {
    const { action } = await this.call<{ action: { status: "running" | "success" | "error" } }>(
      "GET",
      `/actions/${encodeURIComponent(actionId)}`,
    );
    return action.status === "success" ? "done" : action.status === "error" ? "failed" : "pending";
  }

  /** A Hetzner order is the server itself (its id), so an undelivered order is still a server to destroy. */
  serverToDestroy(recorded: { orderId: string | null; serviceId: string | null }): string | null {
    return recorded.serviceId ?? recorded.orderId;
  }

  async deleteSshKey(name: string): Promise<void> {
    const found = await this.call<{ ssh_keys: { id: number; name: string }[] }>("GET", `/ssh_keys?name=${encodeURIComponent(name)}`);
    for (const key of found.ssh_keys.filter((k) => k.name === name)) {
      await ignoreNotFound(() => this.call("DELETE", `/ssh_keys/${key.id}`));
    }
  }

  async destroy(serviceId: string): Promise<void> {
    await ignoreNotFound(() => this.call("DELETE", `/servers/${encodeURIComponent(serviceId)}`));
  }
}
