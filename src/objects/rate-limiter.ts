/**
 * One Durable Object per limited subject (`token:<id>` or
 * `capability:<name>`): its token buckets. Buckets live in memory only — a
 * restarted object starts them full, which errs toward letting work through;
 * nothing here is worth a storage write per request. The limits come with
 * each call (the caller read them with the token or from its cache), so a
 * changed limit applies at once.
 */
import { DurableObject } from "cloudflare:workers";
import { type BucketLimit, type BucketState, giveBack, take } from "../core/rate-limit";

/** Buckets one object keeps (a subject has two or three; this bounds a misuse). */
const MAX_BUCKETS = 16;

export class RateLimiter extends DurableObject<Env> {
  private readonly buckets = new Map<string, BucketState>();

  /** Takes `cost` from the bucket, or says in how many ms to try again. */
  take(bucket: string, limit: BucketLimit, cost: number): { allowed: boolean; retryAfterMs: number } {
    const result = take(this.buckets.get(bucket), limit, cost, Date.now());
    this.remember(bucket, result.state);
    return { allowed: result.allowed, retryAfterMs: result.allowed ? 0 : result.retryAfterMs };
  }

  /** Undoes a take whose request was refused elsewhere (another limit of the same request). */
  giveBack(bucket: string, limit: BucketLimit, cost: number): void {
    this.remember(bucket, giveBack(this.buckets.get(bucket), limit, cost, Date.now()));
  }

  private remember(bucket: string, state: BucketState): void {
    if (!this.buckets.has(bucket) && this.buckets.size >= MAX_BUCKETS) this.buckets.clear();
    this.buckets.set(bucket, state);
  }
}
