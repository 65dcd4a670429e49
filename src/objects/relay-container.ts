/**
 * The SSH relay as a Cloudflare Container (one instance per deployment that
 * needs SSH; it sleeps when idle). The deployment object reaches it through
 * this class; locally `npm start` runs the same relay as a Node process instead.
 */

import type { DurableObject } from "cloudflare:workers";
import { Container } from "@cloudflare/containers";

export class RelayContainer extends Container<Env> {
  defaultPort = 8080;
  sleepAfter = "10m";

  constructor(ctx: DurableObject["ctx"], env: Env) {
    super(ctx, env);
    // The relay refuses to start without the shared secret it verifies requests with.
    this.envVars = { RELAY_SECRET: env.RELAY_SECRET ?? "", RELAY_PORT: "8080" };
  }
}
