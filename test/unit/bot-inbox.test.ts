import { describe, expect, it } from "vitest";
import { parseBotFrame } from "../../src/objects/bot-frames";
import { BotInbox } from "../../src/objects/bot-inbox";

const frame = (msg: unknown) => parseBotFrame(JSON.stringify(msg));
const result = (taskId: string, success = true) =>
  frame({
    type: "task_complete",
    payload: { task_id: taskId, success, result: success ? { ok: true } : null, error: success ? undefined : "x" },
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const WAIT_MS = 300;

describe("a bot's inbox: a start waiting for its result", () => {
  it("ends the wait the moment the result arrives, not when the wait runs out", async () => {
    const inbox = new BotInbox(WAIT_MS);
    const t0 = Date.now();
    const waited = inbox.awaitResult("t1");
    await sleep(20);
    void inbox.push(result("t1"), async () => {});
    expect(await waited).toBe(true);
    expect(Date.now() - t0).toBeLessThan(WAIT_MS / 2);
  });

  it("answers at once for a result already queued behind the frame being applied", async () => {
    const inbox = new BotInbox(WAIT_MS);
    let release!: () => void;
    const blocker = new Promise<void>((r) => {
      release = r;
    });
    void inbox.push(frame({ type: "task_started", payload: { task_id: "t1" } }), () => blocker);
    void inbox.push(result("t1"), async () => {});
    const t0 = Date.now();
    expect(await inbox.awaitResult("t1")).toBe(true);
    expect(Date.now() - t0).toBeLessThan(WAIT_MS / 2);
    release();
  });

  it("gives up after its wait when nothing, another task's result, or a failure arrives", async () => {
    const inbox = new BotInbox(WAIT_MS);
    const t0 = Date.now();
    const waited = inbox.awaitResult("t1");
    void inbox.push(result("t2"), async () => {});
    void inbox.push(result("t1", false), async () => {});
    expect(await waited).toBe(false);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(WAIT_MS);
  });

  it("applies frames one at a time, in order, and a failed one does not stop the next", async () => {
    const inbox = new BotInbox(WAIT_MS);
    const applied: string[] = [];
    const first = inbox.push(frame({ type: "heartbeat" }), async () => {
      await sleep(10);
      applied.push("first");
      throw new Error("boom");
    });
    const second = inbox.push(frame({ type: "heartbeat" }), async () => {
      applied.push("second");
    });
    await expect(first).rejects.toThrow("boom");
    await second;
    expect(applied).toEqual(["first", "second"]);
  });
});
