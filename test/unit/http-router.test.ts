import { TrieRouter } from "hono/router/trie-router";
import { describe, expect, it } from "vitest";
import { createApp } from "../../src/app";
import { MAX_REMEMBERED, MemoRouter } from "../../src/http-router";

/** A TrieRouter that counts how often it is asked. */
class CountingRouter extends TrieRouter<string> {
  matches = 0;
  override match(method: string, path: string) {
    this.matches++;
    return super.match(method, path);
  }
}

function routerWithBots() {
  const inner = new CountingRouter();
  const router = new MemoRouter<string>(inner);
  router.add("ALL", "/api/v1/*", "auth");
  router.add("GET", "/api/v1/bots/available", "available");
  router.add("GET", "/api/v1/bots/:id", "bot");
  return { inner, router };
}

const handlersOf = (result: ReturnType<MemoRouter<string>["match"]>) => result[0].map(([h]) => h);
const paramsOf = (result: ReturnType<MemoRouter<string>["match"]>) => result[0].map(([, p]) => p);

describe("the Worker's router", () => {
  it("answers as the trie does, a static route beside a parameter included, and asks it once per method and path", () => {
    const { inner, router } = routerWithBots();
    const reference = new TrieRouter<string>();
    for (const [m, p, h] of [
      ["ALL", "/api/v1/*", "auth"],
      ["GET", "/api/v1/bots/available", "available"],
      ["GET", "/api/v1/bots/:id", "bot"],
    ] as const)
      reference.add(m, p, h);
    for (const path of ["/api/v1/bots/available", "/api/v1/bots/b-1", "/api/v1/tasks"]) {
      expect(router.match("GET", path)).toEqual(reference.match("GET", path));
    }
    expect(handlersOf(router.match("GET", "/api/v1/bots/b-1"))).toEqual(["auth", "bot"]);
    expect(paramsOf(router.match("GET", "/api/v1/bots/b-1"))[1]).toEqual({ id: "b-1" });
    expect(handlersOf(router.match("POST", "/api/v1/bots/b-1"))).toEqual(["auth"]);
    // Five calls above for three GET paths and one POST: the trie was asked four times.
    expect(inner.matches).toBe(4);
  });

  it("keeps at most MAX_REMEMBERED answers, the oldest leaving first", () => {
    const { inner, router } = routerWithBots();
    for (let i = 0; i < MAX_REMEMBERED + 50; i++) router.match("GET", `/api/v1/bots/b-${i}`);
    expect(router.size).toBe(MAX_REMEMBERED);
    const asked = inner.matches;
    router.match("GET", `/api/v1/bots/b-${MAX_REMEMBERED + 49}`); // recent: kept
    expect(inner.matches).toBe(asked);
    expect(paramsOf(router.match("GET", "/api/v1/bots/b-0"))[1]).toEqual({ id: "b-0" }); // oldest: asked again, still right
    expect(inner.matches).toBe(asked + 1);
  });

  it("is the router the coordinator's app routes with (its routes, static and parameter, are tested through SELF.fetch)", () => {
    expect(createApp().router.name).toBe("MemoRouter + TrieRouter");
  });
});
