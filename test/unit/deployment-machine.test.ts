import { describe, expect, it } from "vitest";
import {
  advance,
  begin,
  cancel,
  DEPLOYMENT_STAGES,
  type DeploymentStage,
  expireIfStale,
  initialState,
  isStale,
  type MachineState,
  nextStage,
  retry,
  STALE_INSTALLING_MS,
  type StageTimings,
} from "../../src/core/deployment-machine";

const T: StageTimings = {
  pollIntervalMs: 30_000,
  stageTimeoutMs: { setup_complete: 20 * 60_000 },
  defaultStageTimeoutMs: 5 * 60_000,
  maxTransientErrors: 2,
};
const at = (stage: DeploymentStage | null, over: Partial<MachineState> = {}): MachineState => ({
  ...begin({ ...initialState(0), stage }, 0),
  ...over,
});

describe("deployment stage machine", () => {
  it("runs the ten stages in the seed's order with the documented statuses", () => {
    let state = begin(initialState(0), 0);
    expect(state.status).toBe("ORDERING");
    const seen: [string | null, string][] = [];
    for (let now = 1; state.status !== "READY"; now++) {
      const step = advance(state, { kind: "done" }, now, T);
      state = step.state;
      seen.push([state.stage, state.status]);
      if (state.status !== "READY") expect(step.wakeAtMs).toBe(now);
      else expect(step.wakeAtMs).toBeNull();
    }
    expect(seen.map(([s]) => s)).toEqual([...DEPLOYMENT_STAGES]);
    expect(seen.map(([, s]) => s)).toEqual([
      "ORDERING",
      "ORDERING",
      "ORDERING",
      "PROVISIONING",
      "PROVISIONING",
      "PROVISIONING",
      "PROVISIONING",
      "INSTALLING",
      "INSTALLING",
      "READY",
    ]);
  });

  it("resumes from any stage: the next stage is the one after the last completed", () => {
    expect(nextStage(null)).toBe("ssh_key_generated");
    for (let i = 0; i < DEPLOYMENT_STAGES.length - 1; i++) expect(nextStage(DEPLOYMENT_STAGES[i]!)).toBe(DEPLOYMENT_STAGES[i + 1]);
    expect(nextStage("setup_complete")).toBeNull();
    expect(begin({ ...initialState(0), stage: "vps_ordered" }, 0).status).toBe("PROVISIONING");
    expect(begin({ ...initialState(0), stage: "ssh_ready" }, 0).status).toBe("INSTALLING");
    expect(begin({ ...initialState(0), stage: "setup_complete" }, 0).status).toBe("READY");
  });

  it("waiting polls at the interval and times out per stage", () => {
    const s = at("setup_script_launched", { stageStartedAtMs: 0 });
    const wait = advance(s, { kind: "waiting" }, 60_000, T);
    expect(wait.wakeAtMs).toBe(90_000);
    expect(wait.state.status).toBe("INSTALLING");
    const late = advance(s, { kind: "waiting" }, 20 * 60_000, T);
    expect(late.state).toMatchObject({ status: "ERROR", error: "setup_complete did not finish within 20 min" });
    expect(late.wakeAtMs).toBeNull();
    expect(late.event?.type).toBe("deployment_failed");
  });

  it("only real progress moves lastProgressAt (marker polls do not)", () => {
    const s = at("setup_script_launched", { stageStartedAtMs: 0, lastProgressAtMs: 0 });
    expect(advance(s, { kind: "waiting" }, 1000, T).state.lastProgressAtMs).toBe(0);
    expect(advance(s, { kind: "waiting", progressed: true }, 1000, T).state.lastProgressAtMs).toBe(1000);
  });

  it("retries transient errors with backoff, then fails", () => {
    let s = at("plan_found", { stageStartedAtMs: 0 });
    const first = advance(s, { kind: "transient_error", error: "503" }, 0, T);
    expect(first.wakeAtMs).toBe(2000);
    s = advance(first.state, { kind: "transient_error", error: "503" }, 0, T).state;
    const third = advance(s, { kind: "transient_error", error: "503" }, 0, T);
    expect(third.state).toMatchObject({ status: "ERROR", error: "vps_ordered kept failing: 503" });
    const ok = advance(first.state, { kind: "done" }, 5, T);
    expect(ok.state.transientErrors).toBe(0);
  });

  it("a hard failure stops the machine; terminal states ignore outcomes", () => {
    const failed = advance(at("vps_ordered"), { kind: "failed", error: "out of stock" }, 5, T);
    expect(failed.state).toMatchObject({ status: "ERROR", error: "out of stock", stage: "vps_ordered" });
    expect(advance(failed.state, { kind: "done" }, 6, T)).toEqual({ state: failed.state, wakeAtMs: null, event: null });
  });

  it("retry starts clean; cancel stops with error 'cancelled'", () => {
    const failed = advance(at("vps_ordered"), { kind: "failed", error: "x" }, 5, T).state;
    expect(failed.status).toBe("ERROR");
    expect(retry(failed, 10)).toEqual({ ok: true, state: initialState(10) });
    expect(retry(at("ssh_ready"), 10)).toEqual({
      ok: false,
      message: "only a deployment in ERROR can be retried (this one is INSTALLING)",
    });
    expect(cancel(at("ssh_ready"), 7)).toMatchObject({ ok: true, state: { status: "ERROR", error: "cancelled", stage: "ssh_ready" } });
    expect(cancel(failed, 7)).toEqual({ ok: false, message: "cannot cancel a deployment that is ERROR" });
  });

  it("INSTALLING without progress for 45 minutes is stale; other statuses never are", () => {
    expect(isStale({ status: "INSTALLING", lastProgressAtMs: 0 }, STALE_INSTALLING_MS - 1)).toBe(false);
    expect(isStale({ status: "INSTALLING", lastProgressAtMs: 0 }, STALE_INSTALLING_MS)).toBe(true);
    expect(isStale({ status: "PROVISIONING", lastProgressAtMs: 0 }, 10 * STALE_INSTALLING_MS)).toBe(false);
  });

  it("the stale rule fails a stuck deployment with its reason, and leaves a live one alone", () => {
    const installing = { ...at("setup_script_launched"), lastProgressAtMs: 0 };
    expect(installing.status).toBe("INSTALLING");
    expect(expireIfStale(installing, STALE_INSTALLING_MS - 1)).toBeNull();
    expect(expireIfStale(installing, STALE_INSTALLING_MS)).toEqual({
      state: {
        ...installing,
        status: "ERROR",
        error: "no progress for 45 minutes while installing",
        stageStartedAtMs: null,
        lastProgressAtMs: STALE_INSTALLING_MS,
      },
      wakeAtMs: null,
      event: { type: "deployment_failed", stage: "setup_complete", message: "no progress for 45 minutes while installing" },
    });
  });
});
