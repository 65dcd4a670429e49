/**
 * The VPS provisioning stage machine (seed 002), pure: no I/O, no clock.
 *
 * A deployment records the last stage it *completed*; resuming means running
 * the next one. Every stage is idempotent (it finds what it started before
 * starting again), so a restart at any point re-runs at most the stage that
 * was in flight. The Durable Object executes stages and feeds their outcomes
 * here; this module decides the next state and when to wake up.
 */

export const DEPLOYMENT_STAGES = [
  "ssh_key_generated",
  "openrouter_key_created",
  "plan_found",
  "vps_ordered",
  "vps_delivered",
  "vps_ip_acquired",
  "vps_rebuilt",
  "ssh_ready",
  "setup_script_launched",
  "setup_complete",
] as const;
export type DeploymentStage = (typeof DEPLOYMENT_STAGES)[number];

export const DEPLOYMENT_STATUSES = ["PENDING", "ORDERING", "PROVISIONING", "INSTALLING", "READY", "ERROR"] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];

/** Which status a deployment shows while it works towards each stage. */
const STATUS_WHILE_RUNNING: Record<DeploymentStage, DeploymentStatus> = {
  ssh_key_generated: "ORDERING",
  openrouter_key_created: "ORDERING",
  plan_found: "ORDERING",
  vps_ordered: "ORDERING",
  vps_delivered: "PROVISIONING",
  vps_ip_acquired: "PROVISIONING",
  vps_rebuilt: "PROVISIONING",
  ssh_ready: "PROVISIONING",
  setup_script_launched: "INSTALLING",
  setup_complete: "INSTALLING",
};

export interface StageTimings {
  /** How often to poll while waiting (delivery, rebuild, ssh, setup markers). */
  pollIntervalMs: number;
  /** Give up on one stage after this long in it (delivery can take a while; setup is 20 min). */
  stageTimeoutMs: Partial<Record<DeploymentStage, number>>;
  defaultStageTimeoutMs: number;
  /** Transient errors (provider 5xx, SSH hiccup) are retried this many times per stage. */
  maxTransientErrors: number;
}

export const DEFAULT_TIMINGS: StageTimings = {
  pollIntervalMs: 30_000,
  stageTimeoutMs: { vps_delivered: 60 * 60_000, vps_rebuilt: 20 * 60_000, ssh_ready: 10 * 60_000, setup_complete: 20 * 60_000 },
  defaultStageTimeoutMs: 5 * 60_000,
  maxTransientErrors: 5,
};

/** 45 minutes without progress (stage change or script progress) in INSTALLING: the sweeper marks it ERROR. */
export const STALE_INSTALLING_MS = 45 * 60_000;

export interface MachineState {
  status: DeploymentStatus;
  /** Last completed stage; null before the first. */
  stage: DeploymentStage | null;
  /** When work on the next stage began (for its timeout). */
  stageStartedAtMs: number | null;
  /** Last stage change or script progress (for the stale rule). Marker polls do not count. */
  lastProgressAtMs: number;
  transientErrors: number;
  error: string | null;
}

/** What executing the next stage produced. */
export type StageOutcome =
  | { kind: "done" }
  | { kind: "waiting"; progressed?: boolean }
  | { kind: "transient_error"; error: string }
  | { kind: "failed"; error: string };

export interface Step {
  state: MachineState;
  /** When to run the machine again; null when it stops (READY or ERROR). */
  wakeAtMs: number | null;
  /** Log-worthy change: a stage completed, the status changed or it failed. */
  event: {
    type: "stage_completed" | "deployment_ready" | "deployment_failed" | "stage_waiting" | "stage_retry";
    stage: DeploymentStage | null;
    message: string;
  } | null;
}

export function initialState(nowMs: number): MachineState {
  return { status: "PENDING", stage: null, stageStartedAtMs: null, lastProgressAtMs: nowMs, transientErrors: 0, error: null };
}

export function nextStage(completed: DeploymentStage | null): DeploymentStage | null {
  const index = completed === null ? 0 : DEPLOYMENT_STAGES.indexOf(completed) + 1;
  return DEPLOYMENT_STAGES[index] ?? null;
}

export function isTerminalStatus(status: DeploymentStatus): boolean {
  return status === "READY" || status === "ERROR";
}

/** Starting (or resuming) the machine: the status the next stage implies, timers restarted if it was pending. */
export function begin(state: MachineState, nowMs: number): MachineState {
  const next = nextStage(state.stage);
  if (next === null) return { ...state, status: "READY" };
  return { ...state, status: STATUS_WHILE_RUNNING[next], stageStartedAtMs: state.stageStartedAtMs ?? nowMs, error: null };
}

/** Folds one stage outcome into the state and decides when to run again. */
export function advance(state: MachineState, outcome: StageOutcome, nowMs: number, t: StageTimings = DEFAULT_TIMINGS): Step {
  const running = nextStage(state.stage);
  if (running === null || isTerminalStatus(state.status)) return { state, wakeAtMs: null, event: null };

  switch (outcome.kind) {
    case "done": {
      const following = nextStage(running);
      if (following === null) {
        return {
          state: {
            ...state,
            stage: running,
            status: "READY",
            stageStartedAtMs: null,
            lastProgressAtMs: nowMs,
            transientErrors: 0,
            error: null,
          },
          wakeAtMs: null,
          event: { type: "deployment_ready", stage: running, message: "setup complete; the deployment is ready" },
        };
      }
      return {
        state: {
          ...state,
          stage: running,
          status: STATUS_WHILE_RUNNING[following],
          stageStartedAtMs: nowMs,
          lastProgressAtMs: nowMs,
          transientErrors: 0,
        },
        wakeAtMs: nowMs, // run the next stage at once
        event: { type: "stage_completed", stage: running, message: `${running} done` },
      };
    }
    case "waiting": {
      const startedAt = state.stageStartedAtMs ?? nowMs;
      const timeoutMs = t.stageTimeoutMs[running] ?? t.defaultStageTimeoutMs;
      if (nowMs - startedAt >= timeoutMs)
        return fail(state, running, `${running} did not finish within ${Math.round(timeoutMs / 60_000)} min`, nowMs);
      return {
        state: { ...state, stageStartedAtMs: startedAt, lastProgressAtMs: outcome.progressed ? nowMs : state.lastProgressAtMs },
        wakeAtMs: nowMs + t.pollIntervalMs,
        event: null,
      };
    }
    case "transient_error": {
      const errors = state.transientErrors + 1;
      if (errors > t.maxTransientErrors) return fail(state, running, `${running} kept failing: ${outcome.error}`, nowMs);
      return {
        state: { ...state, transientErrors: errors, stageStartedAtMs: state.stageStartedAtMs ?? nowMs },
        wakeAtMs: nowMs + Math.min(t.pollIntervalMs, 1000 * 2 ** errors),
        event: { type: "stage_retry", stage: running, message: `${running}: ${outcome.error} (retry ${errors}/${t.maxTransientErrors})` },
      };
    }
    case "failed":
      return fail(state, running, outcome.error, nowMs);
  }
}

function fail(state: MachineState, stage: DeploymentStage, error: string, nowMs: number): Step {
  return {
    state: { ...state, status: "ERROR", error, stageStartedAtMs: null, lastProgressAtMs: nowMs },
    wakeAtMs: null,
    event: { type: "deployment_failed", stage, message: error },
  };
}

/** A transition an operator asked for (retry, cancel): the new state, or why it is not allowed now. */
export type OperatorResult = { ok: true; state: MachineState } | { ok: false; message: string };

/**
 * `retry` (seed 002's retryDeploy): only from ERROR, and it starts clean from the
 * first stage. Stages are idempotent and the deployment keeps its intent records
 * (key names, order ids), so live resources are found and reused rather than bought again.
 */
export function retry(state: MachineState, nowMs: number): OperatorResult {
  if (state.status !== "ERROR") return { ok: false, message: `only a deployment in ERROR can be retried (this one is ${state.status})` };
  return { ok: true, state: initialState(nowMs) };
}

/** `cancel`: the machine stops; the deployment is ERROR with error `cancelled`. Not from READY or ERROR. */
export function cancel(state: MachineState, nowMs: number): OperatorResult {
  if (isTerminalStatus(state.status)) return { ok: false, message: `cannot cancel a deployment that is ${state.status}` };
  return { ok: true, state: { ...state, status: "ERROR", error: "cancelled", stageStartedAtMs: null, lastProgressAtMs: nowMs } };
}

/** The cron sweeper's rule: INSTALLING with no progress for 45 minutes is stuck. */
export function isStale(state: Pick<MachineState, "status" | "lastProgressAtMs">, nowMs: number, staleMs = STALE_INSTALLING_MS): boolean {
  return state.status === "INSTALLING" && nowMs - state.lastProgressAtMs >= staleMs;
}

/** The stale rule as a transition: a stuck deployment fails (with its event); null while it is not stale. */
export function expireIfStale(state: MachineState, nowMs: number, staleMs = STALE_INSTALLING_MS): Step | null {
  const running = nextStage(state.stage);
  if (!running || !isStale(state, nowMs, staleMs)) return null;
  return fail(state, running, `no progress for ${Math.round(staleMs / 60_000)} minutes while installing`, nowMs);
}
