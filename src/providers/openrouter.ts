/** OpenRouter's key management API (provisioning key): create, find by name, delete. */
import { ignoreNotFound, requestJson } from "./http";
import type { OpenRouterKey, OpenRouterKeys } from "./types";

export interface OpenRouterOptions {
  provisioningKey: string;
  baseUrl?: string;
  fetchImpl?: typeof fetch;
}

const PAGE_SIZE = 100;
const MAX_PAGES = 50;

export class OpenRouterKeysApi implements OpenRouterKeys {
  private readonly baseUrl: string;

  constructor(private readonly opts: OpenRouterOptions) {
    this.baseUrl = (opts.baseUrl ?? "https://openrouter.ai/api/v1").replace(/\/$/, "");
  }

  private call<T>(method: "GET" | "POST" | "DELETE", path: string, body?: unknown): Promise<T> {
    return requestJson<T>(
      { method, url: `${this.baseUrl}${path}`, headers: { Authorization: `Bearer ${this.opts.provisioningKey}` }, body },
      this.opts.fetchImpl,
    );
  }

  async create(name: string, limitUsd: number | null) {
    const res = await this.call<{ data: { hash: string; name: string }; key: string }>("POST", "/keys", {
      name,
      ...(limitUsd !== null ? { limit: limitUsd } : {}),
    });
    return { hash: res.data.hash, name: res.data.name, key: res.key };
  }

  async findByName(name: string): Promise<OpenRouterKey | null> {
    for (let page = 0; page < MAX_PAGES; page++) {
      const res = await this.call<{ data: { hash: string; name: string }[] }>("GET", `/keys?offset=${page * PAGE_SIZE}`);
      const hit = res.data.find((k) => k.name === name);
      if (hit) return { hash: hit.hash, name: hit.name };
      if (res.data.length < PAGE_SIZE) return null;
    }
    return null;
  }

  async delete(hash: string): Promise<void> {
    await ignoreNotFound(() => this.call("DELETE", `/keys/${encodeURIComponent(hash)}`));
  }
}
