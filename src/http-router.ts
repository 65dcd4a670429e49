/**
 * The Worker's router: hono's TrieRouter, its answers remembered per method and path.
 *
 * hono's default (SmartRouter) tries its RegExpRouter first, which cannot hold a static route beside a
 * parameter at the same place (`/bots/available` and `/bots/:id`, seed 001's paths), so every request
 * walked the trie of some 200 routes and their middleware (6% of the coordinator's CPU in the benchmark's
 * profile). The answer for a method and path never changes once the routes are added, so it is kept:
 * the paths a fleet calls all the time (`POST /api/v1/tasks`, the bot socket) are matched once per
 * isolate. Bounded: past MAX_REMEMBERED paths the oldest goes (paths with ids come and go).
 */
import type { Result, Router } from "hono/router";
import { TrieRouter } from "hono/router/trie-router";

export const MAX_REMEMBERED = 500;

export class MemoRouter<T> implements Router<T> {
  readonly name = "MemoRouter + TrieRouter";
  private readonly remembered = new Map<string, Result<T>>();

  constructor(private readonly inner: Router<T> = new TrieRouter<T>()) {}

  add(method: string, path: string, handler: T): void {
    this.remembered.clear(); // (routes are all added before the first request; this keeps it right regardless)
    this.inner.add(method, path, handler);
  }

  match(method: string, path: string): Result<T> {
    const key = `${method} ${path}`;
    const known = this.remembered.get(key);
    if (known) return known;
    const result = this.inner.match(method, path);
    if (this.remembered.size >= MAX_REMEMBERED) this.remembered.delete(this.remembered.keys().next().value!);
    this.remembered.set(key, result);
    return result;
  }

  /** How many answers are kept (for tests). */
  get size(): number {
    return this.remembered.size;
  }
}
