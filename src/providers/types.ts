/**
 * What the deployment machine needs from a VPS provider and from OpenRouter.
 * Every call is safe to repeat: creating calls take a name the adapter first
 * looks up, so a resumed stage finds what it started instead of buying twice.
 */

export interface PlanChoice {
  region: string;
  plan: string;
}

export interface Plan {
  /** Provider's id for the plan (server type, plan code). */
  id: string;
  description: string;
}

export interface OrderRequest {
  planId: string;
  region: string;
  /** Unique per deployment; written as intent before ordering, used to find the order again. */
  name: string;
  sshPublicKey: string;
}

export type OrderState = { state: "pending" } | { state: "delivered"; serviceId: string } | { state: "failed"; reason: string };

export interface Server {
  serviceId: string;
  ip: string | null;
  /** Provider's word, e.g. "running". */
  status: string;
}

export type ActionState = "pending" | "done" | "failed";

export interface VpsProvider {
  readonly name: string;
  findPlan(choice: PlanChoice): Promise<Plan>;
  /** Places the order (or returns the one already placed under `name`). */
  order(req: OrderRequest): Promise<{ orderId: string }>;
  /** The order's associated service once delivered (not a snapshot of the server list). */
  orderState(orderId: string): Promise<OrderState>;
  getServer(serviceId: string): Promise<Server>;
  /** Reinstalls the OS with our SSH key; returns an action id to poll. */
  rebuild(serviceId: string, sshPublicKey: string, keyName: string): Promise<{ actionId: string }>;
  /**
   * The rebuild of this server issued at or after `sinceMs` (when its intent was recorded; a minute
   * of clock skew allowed), if the provider has one: a resumed stage waits on it instead of issuing
   * a second rebuild.
   */
  findRebuild(serviceId: string, sinceMs: number): Promise<{ actionId: string } | null>;
  actionState(serviceId: string, actionId: string): Promise<ActionState>;
  /** Destroys the server; succeeds if it is already gone. */
  destroy(serviceId: string): Promise<void>;
  /** Deletes the SSH key stored at the provider under `name` (where the provider keeps keys); succeeds if there is none. */
  deleteSshKey(name: string): Promise<void>;
  /**
   * Which server a teardown destroys, from what the deployment recorded: the
   * delivered service, or (where the provider's order id is the server id) the
   * order of a server whose delivery was never seen. Null: nothing was bought.
   */
  serverToDestroy(recorded: { orderId: string | null; serviceId: string | null }): string | null;
}

/** How far a provider's clock may be behind ours when we look for an action we issued. */
export const PROVIDER_CLOCK_SKEW_MS = 60_000;

export interface OpenRouterKey {
  hash: string;
  name: string;
}

export interface OpenRouterKeys {
  /** The secret is returned only here, at creation. */
  create(name: string, limitUsd: number | null): Promise<OpenRouterKey & { key: string }>;
  findByName(name: string): Promise<OpenRouterKey | null>;
  /** Succeeds if the key is already gone. */
  delete(hash: string): Promise<void>;
}
