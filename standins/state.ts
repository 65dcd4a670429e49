/** Stand-in state: in memory, optionally persisted to a JSON file so it survives restarts (like a real provider). */
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

export interface StandinState {
  nextId: number;
  hetzner: {
    servers: {
      id: number;
      name: string;
      server_type: string;
      location: string;
      status: string;
      ip: string;
      ssh_keys: number[];
      created: string;
    }[];
    sshKeys: { id: number; name: string; public_key: string }[];
    actions: {
      id: number;
      command: string;
      server: number;
      startedAtMs?: number;
      readyAtMs: number;
      status: "running" | "success" | "error";
    }[];
  };
  ovh: {
    orders: {
      orderId: number;
      description: string;
      planCode: string;
      datacenter: string;
      createdAtMs: number;
      vps: string;
      cancelled: boolean;
    }[];
    carts: Record<string, { description: string; items: { itemId: number; planCode: string; datacenter?: string }[] }>;
    tasks: { id: number; vps: string; type?: string; createdAtMs?: number; readyAtMs: number }[];
    terminated: string[];
  };
  openrouter: { keys: { hash: string; name: string; limit: number | null; created_at: string }[] };
}

export function emptyState(): StandinState {
  return {
    nextId: 1000,
    hetzner: { servers: [], sshKeys: [], actions: [] },
    ovh: { orders: [], carts: {}, tasks: [], terminated: [] },
    openrouter: { keys: [] },
  };
}

export class StateStore {
  state: StandinState;
  constructor(private readonly file: string | null) {
    this.state = file && existsSync(file) ? { ...emptyState(), ...(JSON.parse(readFileSync(file, "utf8")) as StandinState) } : emptyState();
  }
  nextId(): number {
    return this.state.nextId++;
  }
  save(): void {
    if (!this.file) return;
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.state, null, 2));
    renameSync(`${this.file}.tmp`, this.file);
  }
}
