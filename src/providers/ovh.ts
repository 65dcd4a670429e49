/**
 * OVHcloud-style VPS API: every call is signed
 * (`$1$` + SHA1(appSecret+consumerKey+METHOD+URL+BODY+timestamp)), ordering
 * goes through a cart, and the delivered VPS is the order's associated object.
 */
import { digestHex } from "../crypto/encoding";
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

export interface OvhOptions {
  appKey: string;
  appSecret: string;
  consumerKey: string;
  baseUrl?: string;
  subsidiary?: string;
  imageName?: string;
  fetchImpl?: typeof fetch;
  now?: () => number;
}

async function ovhSignature(
  appSecret: string,
  consumerKey: string,
  method: string,
  url: string,
  body: string,
  timestampS: number,
): Promise<string> {
  return `$1$${await digestHex("SHA-1", [appSecret, consumerKey, method, url, body, String(timestampS)].join("+"))}`;
}

export class OvhProvider implements VpsProvider {
  readonly name = "ovh";
  private readonly baseUrl: string;
  private clockSkewS: number | null = null;

  constructor(private readonly opts: OvhOptions) {
    this.baseUrl = (opts.baseUrl ?? "https://eu.api.ovh.com/1.0").replace(/\/$/, "");
  }

  /** OVH rejects signatures whose timestamp is off: align with /auth/time once. */
  private async timestampS(): Promise<number> {
    const localS = Math.floor((this.opts.now ?? Date.now)() / 1000);
    if (this.clockSkewS === null) {
      const serverS = await requestJson<number>({ method: "GET", url: `${this.baseUrl}/auth/time` }, this.opts.fetchImpl);
      this.clockSkewS = serverS - localS;
    }
    return localS + this.clockSkewS;
  }

  private async call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    const url = `${this.baseUrl}${path}`;
    const bodyText = body === undefined ? "" : JSON.stringify(body);
    const ts = await this.timestampS();
    const headers = {
      "X-Ovh-Application": this.opts.appKey,
      "X-Ovh-Consumer": this.opts.consumerKey,
      "X-Ovh-Timestamp": String(ts),
      "X-Ovh-Signature": await ovhSignature(this.opts.appSecret, this.opts.consumerKey, method, url, bodyText, ts),
    };
    return requestJson<T>({ method, url, headers, body }, this.opts.fetchImpl);
  }

  async findPlan({ plan, region }: PlanChoice): Promise<Plan> {
    const catalog = await this.call<{
      plans: { planCode: string; invoiceName: string; configurations?: { name: string; values: string[] }[] }[];
    }>("GET", `/order/catalog/public/vps?ovhSubsidiary=${encodeURIComponent(this.opts.subsidiary ?? "FR")}`);
    const found = catalog.plans.find((p) => p.planCode === plan);
    if (!found) throw new ProviderError(`no OVH VPS plan '${plan}'`, false);
    const datacenters = found.configurations?.find((c) => c.name === "vps_datacenter")?.values;
    if (datacenters && !datacenters.includes(region)) throw new ProviderError(`plan '${plan}' is not offered in '${region}'`, false);
    return { id: found.planCode, description: found.invoiceName };
  }

  /** OVH takes the SSH key at rebuild time, not at order time. */
  async order({ planId, region, name }: OrderRequest) {
    // The cart's description carries our name, so a resumed stage finds the order it placed.
    const existing = await this.findOrderByName(name);
    if (existing) return { orderId: existing };
    const cart = await this.call<{ cartId: string }>("POST", "/order/cart", {
      ovhSubsidiary: this.opts.subsidiary ?? "FR",
      description: name,
    });
    const item = await this.call<{ itemId: number }>("POST", `/order/cart/${cart.cartId}/vps`, {
      planCode: planId,
      duration: "P1M",
      pricingMode: "default",
      quantity: 1,
    });
    await this.call("POST", `/order/cart/${cart.cartId}/item/${item.itemId}/configuration`, { label: "vps_datacenter", value: region });
    await this.call("POST", `/order/cart/${cart.cartId}/assign`);
    const checkout = await this.call<{ orderId: number }>("POST", `/order/cart/${cart.cartId}/checkout`, {
      autoPayWithPreferredPaymentMethod: true,
      waiveRetractationPeriod: true,
    });
    return { orderId: String(checkout.orderId) };
  }

  private async findOrderByName(name: string): Promise<string | null> {
    const ids = await this.call<number[]>("GET", `/me/order?description=${encodeURIComponent(name)}`);
    return ids.length ? String(ids[ids.length - 1]) : null;
  }

  async orderState(orderId: string): Promise<OrderState> {
    // A 404 means the order is not visible yet (just placed); any other failure is the caller's to retry.
    const status = await this.call<{ status: string }>("GET", `/me/order/${orderId}/status`).catch((err: unknown) => {
      if (err instanceof ProviderError && err.status === 404) return { status: "unknown" };
      throw err;
    });
    if (status.status === "cancelled") return { state: "failed", reason: `order ${orderId} was cancelled` };
    try {
      const assoc = await this.call<{ type: string; id: string }>("GET", `/me/order/${orderId}/associatedObject`);
      if (assoc.type === "VPS" && assoc.id) return { state: "delivered", serviceId: assoc.id };
    } catch (err) {
      if (!(err instanceof ProviderError && err.status === 404)) throw err;
    }
    return { state: "pending" };
  }

  async getServer(serviceId: string): Promise<Server> {
    const vps = await this.call<{ name: string; state: string }>("GET", `/vps/${encodeURIComponent(serviceId)}`);
    const ips = await this.call<string[]>("GET", `/vps/${encodeURIComponent(serviceId)}/ips`);
    return { serviceId, ip: ips.find((ip) => /^\d+\.\d+\.\d+\.\d+$/.test(ip)) ?? null, status: vps.state };
  }

  async rebuild(serviceId: string, sshPublicKey: string, _keyName: string): Promise<{ actionId: string }> {
    const images = await this.call<string[]>("GET", `/vps/${encodeURIComponent(serviceId)}/images/available`);
    const wanted = this.opts.imageName ?? "Ubuntu 24.04";
    let imageId: string | null = null;
    for (const id of images) {
      const image = await this.call<{ id: string; name: string }>(
        "GET",
        `/vps/${encodeURIComponent(serviceId)}/images/available/${encodeURIComponent(id)}`,
      );
      if (image.name === wanted) {
        imageId = image.id;
        break;
      }
    }
    if (!imageId) throw new ProviderError(`image '${wanted}' is not available for ${serviceId}`, false);
    const task = await this.call<{ id: number }>("POST", `/vps/${encodeURIComponent(serviceId)}/rebuild`, {
      imageId,
      publicSshKey: sshPublicKey,
      doNotSendPassword: true,
    });
    return { actionId: String(task.id) };
  }

  async findRebuild(serviceId: string, sinceMs: number): Promise<{ actionId: string } | null> {
    const base = `/vps/${encodeURIComponent(serviceId)}/tasks`;
    const ids = await this.call<number[]>("GET", `${base}?type=rebuildVm`);
    // Newest first, a bounded number: a rebuild we issued is among the latest tasks of the VPS.
    for (const id of [...ids].sort((a, b) => b - a).slice(0, 10)) {
      const task = await this.call<{ id: number; date: string }>("GET", `${base}/${id}`);
      if (Date.parse(task.date) >= sinceMs - PROVIDER_CLOCK_SKEW_MS) return { actionId: String(task.id) };
    }
    return null;
  }

  async actionState(serviceId: string, actionId: string): Promise<ActionState> {
    const task = await this.call<{ state: string }>("GET", `/vps/${encodeURIComponent(serviceId)}/tasks/${encodeURIComponent(actionId)}`);
    if (task.state === "done") return "done";
    if (task.state === "error" || task.state === "cancelled") return "failed";
    return "pending";
  }

  /** An OVH order is not a VPS: before delivery there is nothing to terminate (the unpaid order lapses). */
  serverToDestroy(recorded: { orderId: string | null; serviceId: string | null }): string | null {
    return recorded.serviceId;
  }

  /** OVH takes the key inline at rebuild; nothing is stored at the provider. */
  async deleteSshKey(_name: string): Promise<void> {}

  async destroy(serviceId: string): Promise<void> {
    await ignoreNotFound(() => this.call("POST", `/vps/${encodeURIComponent(serviceId)}/terminate`));
  }
}
