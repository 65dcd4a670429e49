import { afterEach, describe, expect, it, vi } from "vitest";
import { createLogger, redact } from "../../src/log";

afterEach(() => vi.restoreAllMocks());

/** The lines a logger printed, parsed (each must be one JSON object). */
function capture() {
  const lines: string[] = [];
  for (const method of ["log", "warn", "error"] as const) {
    vi.spyOn(console, method).mockImplementation((line: unknown) => {
      lines.push(String(line));
    });
  }
  return () => lines.map((l) => JSON.parse(l));
}

describe("structured logs", () => {
  it("one JSON object per line with level, msg, time and the context's ids", () => {
    const lines = capture();
    const log = createLogger({ request_id: "r-1" }, "info").child({ bot_id: "b-1" });
    log.info("task dispatched", { task_id: "t-1" });
    log.debug("not shown at info");
    log.error("failed", { error: "boom" });
    const [first, second, ...rest] = lines();
    expect(rest).toEqual([]);
    expect(first).toEqual({
      level: "info",
      msg: "task dispatched",
      time: expect.any(String),
      request_id: "r-1",
      bot_id: "b-1",
      task_id: "t-1",
    });
    expect(new Date(first.time).toISOString()).toBe(first.time);
    expect(second).toMatchObject({ level: "error", msg: "failed", error: "boom", request_id: "r-1" });
  });

  it("redacts secrets by key at any depth, in arrays too, and never prints what is too deep to inspect", () => {
    const lines = capture();
    const log = createLogger({}, "debug");
    let deep: Record<string, unknown> = { token: "leak-at-depth-12" };
    for (let i = 0; i < 12; i++) deep = { nested: deep };
    log.info("request", {
      token: "t0p",
      headers: { Authorization: "Bearer abc", "x-other": "fine" },
      items: [{ password: "hunter2" }, { api_key: "k" }],
      relay: { private_key: "-----BEGIN", secret: "s", ticket: "tk", passphrase: "p" },
      deep,
    });
    const [line] = lines();
    const text = JSON.stringify(line);
    for (const secret of ["t0p", "Bearer abc", "hunter2", '"k"', "BEGIN", '"s"', '"tk"', '"p"', "leak-at-depth-12"])
      expect(text).not.toContain(secret);
    expect(line.token).toBe("[redacted]");
    expect(line.headers).toEqual({ Authorization: "[redacted]", "x-other": "fine" });
    expect(line.items).toEqual([{ password: "[redacted]" }, { api_key: "[redacted]" }]);
    expect(text).toContain("[too deep]");
  });

  it("redact() leaves values that are not secrets as they are", () => {
    expect(redact({ a: 1, b: [true, null, "x"], c: { d: "e" } })).toEqual({ a: 1, b: [true, null, "x"], c: { d: "e" } });
  });
});
