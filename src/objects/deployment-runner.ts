/**
 * One Durable Object per deployment: runs the provisioning stage machine.
 *
 * The deployment row in D1 is the durable state (stage, intent records); this
 * object keeps only its id and its one alarm. Each alarm runs stages until
 * one has to wait, then arms the alarm for the next poll. A restart loses
 * nothing: the object re-arms itself on start, and the cron sweeper kicks any
 * active deployment whose alarm was lost. Writes are conditional on the row's
 * `updated_at`, so an alarm step and a cancel/retry cannot both land.
 */
import { DurableObject } from "cloudflare:workers";
import {
  advance,
  begin,
  cancel,
  DEFAULT_TIMINGS,
  type DeploymentStatus,
  isStale,
  isTerminalStatus,
  type MachineState,
  nextStage,
  retry,
  type StageOutcome,
  type StageTimings,
} from "../core/deployment-machine";
import { deleteBotRows } from "../db/bots";
import { type DeploymentEventInput, deleteDeploymentRows, getDeployment, writeDeployment } from "../db/deployments";
import type { DeploymentRow } from "../db/schema";
import { AppError, asRpcResult, type RpcResult } from "../errors";
import { ProviderError } from "../providers/http";
import { botStub, type Ctx, createCtx } from "../services/context";
import { createDeployDeps, type DeployDeps } from "../services/deploy-deps";
import { type DeploymentPatch, STAGE_EXECUTORS } from "../services/deployment-stages";

const ID_KEY = "deploymentId";
/** Stages one alarm may run back to back before yielding (each is a few external calls). */
const MAX_STAGES_PER_ALARM = 12;

const machineOf = (d: DeploymentRow): MachineState => ({
  status: d.status as DeploymentStatus,
  stage: d.stage as MachineState["stage"],
  stageStartedAtMs: d.stageStartedAt,
  lastProgressAtMs: d.lastProgressAt,
  transientErrors: d.transientErrors,
  error: d.error,
});

const columnsOf = (m: MachineState, nowMs: number): DeploymentPatch => ({
  status: m.status,
  stage: m.stage,
  stageStartedAt: m.stageStartedAtMs,
  lastProgressAt: m.lastProgressAtMs,
  transientErrors: m.transientErrors,
  error: m.error,
  finishedAt: isTerminalStatus(m.status) ? nowMs : null,
});

export type CallbackEvent = "progress" | "complete" | "error";

export class DeploymentRunner extends DurableObject<Env> {
  /**
   * Alarm steps and RPCs (callback, cancel, retry, teardown) run one at a time:
   * a setup-script callback must not slip between a stage's start and its write.
   */
  private queue: Promise<unknown> = Promise.resolve();

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(work, work);
    this.queue = run.catch(() => undefined);
    return run;
  }

  constructor(state: DurableObjectState, env: Env) {
    super(state, env);
    state.blockConcurrencyWhile(async () => {
      // Re-arm on start: a killed runtime may have lost the alarm.
      const id = await state.storage.get<string>(ID_KEY);
      if (!id || (await state.storage.getAlarm()) !== null) return;
      const row = await getDeployment(createCtx(env).db, id);
      if (row && !isTerminalStatus(row.status as DeploymentStatus)) await state.storage.setAlarm(Date.now());
    });
  }

  private ctxFor(id: string): Ctx {
    return createCtx(this.env, { deployment_id: id, component: "deployment", request_id: crypto.randomUUID() });
  }

  private timings(deps: DeployDeps): StageTimings {
    return {
      ...DEFAULT_TIMINGS,
      pollIntervalMs: deps.config.pollIntervalMs,
      stageTimeoutMs: { ...DEFAULT_TIMINGS.stageTimeoutMs, setup_complete: deps.config.setupTimeoutMs },
    };
  }

  private async load(ctx: Ctx, id: string): Promise<DeploymentRow> {
    const row = await getDeployment(ctx.db, id);
    if (!row) throw new AppError("not_found", `deployment ${id} does not exist`, { id });
    return row;
  }

  // ---------------------------------------------------------------- RPC

  /** Starts (or resumes) the machine. Idempotent: a pending deployment begins, any other keeps its state. */
  async start(id: string): Promise<void> {
    return this.exclusive(() => this.doStart(id));
  }

  private async doStart(id: string): Promise<void> {
    await this.ctx.storage.put(ID_KEY, id);
    const ctx = this.ctxFor(id);
    const row = await this.load(ctx, id);
    if (row.status === "PENDING") {
      await writeDeployment(ctx.db, id, row.updatedAt, columnsOf(begin(machineOf(row), ctx.now()), ctx.now()), [], ctx.now());
    }
    await this.ctx.storage.setAlarm(Date.now());
  }

  /** Sweeper: re-arm a lost alarm, and apply the 45-minute stale rule. */
  async kick(id: string): Promise<"rearmed" | "stale" | "ok"> {
    return this.exclusive(() => this.doKick(id));
  }

  private async doKick(id: string): Promise<"rearmed" | "stale" | "ok"> {
    await this.ctx.storage.put(ID_KEY, id);
    const ctx = this.ctxFor(id);
    const row = await getDeployment(ctx.db, id);
    if (!row || isTerminalStatus(row.status as DeploymentStatus)) return "ok";
    if (isStale(machineOf(row), ctx.now())) {
      const m = { ...machineOf(row), status: "ERROR" as const, error: "no progress for 45 minutes while installing" };
      await writeDeployment(
        ctx.db,
        id,
        row.updatedAt,
        columnsOf(m, ctx.now()),
        [{ type: "deployment_failed", stage: row.stage, message: m.error!, level: "error" }],
        ctx.now(),
      );
      await this.ctx.storage.deleteAlarm();
      ctx.log.warn("deployment stale", { stage: row.stage });
      return "stale";
    }
    if ((await this.ctx.storage.getAlarm()) === null) {
      await this.ctx.storage.setAlarm(Date.now());
      return "rearmed";
    }
    return "ok";
  }

  /** seed 002's retryDeploy: start clean, reusing live resources (stages find them by their intent records). */
  async retry(id: string): Promise<RpcResult<DeploymentRow>> {
    return this.exclusive(() => asRpcResult(() => this.doRetry(id)));
  }

  private async doRetry(id: string): Promise<DeploymentRow> {
    await this.ctx.storage.put(ID_KEY, id);
    const ctx = this.ctxFor(id);
    const row = await this.load(ctx, id);
    if (row.status !== "ERROR")
      throw new AppError("invalid_transition", `only a deployment in ERROR can be retried (this one is ${row.status})`, {
        status: row.status,
      });
    const m = retry(ctx.now());
    // Re-check the rebuild and the host key: the retry may follow a failure there.
    const patch = { ...columnsOf(m, ctx.now()), rebuildActionId: null, hostKeySha256: null };
    if (
      !(await writeDeployment(
        ctx.db,
        id,
        row.updatedAt,
        patch,
        [{ type: "deployment_retry", stage: null, message: "retry: restarting the stage machine" }],
        ctx.now(),
      ))
    ) {
      throw new AppError("conflict", "the deployment changed while retrying; try again");
    }
    ctx.log.info("deployment retry");
    await this.ctx.storage.setAlarm(Date.now());
    return this.load(ctx, id);
  }

  /** Stops the machine: ERROR with error `cancelled`. Resources stay until DELETE. */
  async cancel(id: string): Promise<RpcResult<DeploymentRow>> {
    return this.exclusive(() => asRpcResult(() => this.doCancel(id)));
  }

  private async doCancel(id: string): Promise<DeploymentRow> {
    const ctx = this.ctxFor(id);
    const row = await this.load(ctx, id);
    if (isTerminalStatus(row.status as DeploymentStatus))
      throw new AppError("invalid_transition", `cannot cancel a deployment that is ${row.status}`, { status: row.status });
    await this.ctx.storage.deleteAlarm();
    const m = cancel(machineOf(row), ctx.now());
    if (
      !(await writeDeployment(
        ctx.db,
        id,
        row.updatedAt,
        columnsOf(m, ctx.now()),
        [{ type: "deployment_cancelled", stage: row.stage, message: "cancelled by operator", level: "warn" }],
        ctx.now(),
      ))
    ) {
      throw new AppError("conflict", "the deployment changed while cancelling; try again");
    }
    ctx.log.info("deployment cancelled", { stage: row.stage });
    return this.load(ctx, id);
  }

  /** DELETE: stop, destroy the VPS, delete the OpenRouter key, remove the bot and its tokens, forget the deployment. */
  async teardown(id: string): Promise<RpcResult<null>> {
    return this.exclusive(() =>
      asRpcResult(async () => {
        await this.doTeardown(id);
        return null;
      }),
    );
  }

  private async doTeardown(id: string): Promise<void> {
    const ctx = this.ctxFor(id);
    const row = await this.load(ctx, id);
    await this.ctx.storage.deleteAlarm();
    const deps = createDeployDeps(this.env, id);
    try {
      const serviceId = row.vpsServiceId ?? (row.provider !== "ovh" ? row.vpsOrderId : null);
      if (serviceId) await deps.provider.destroy(serviceId);
      if (row.openrouterKeyHash) await deps.openrouter.delete(row.openrouterKeyHash);
      else if (row.openrouterKeyName) {
        const found = await deps.openrouter.findByName(row.openrouterKeyName);
        if (found) await deps.openrouter.delete(found.hash);
      }
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      await writeDeployment(
        ctx.db,
        id,
        row.updatedAt,
        {},
        [{ type: "teardown_failed", stage: row.stage, message, level: "error" }],
        ctx.now(),
      );
      throw new AppError("service_unavailable", `teardown failed; nothing was forgotten, try DELETE again: ${message}`, { id });
    }
    if (row.botId) {
      await deleteBotRows(ctx.db, row.botId, ctx.now());
      await botStub(ctx, row.botId).shutdown();
    }
    await deleteDeploymentRows(ctx.db, id);
    await this.ctx.storage.deleteAll();
    ctx.log.info("deployment torn down", { vps_service_id: row.vpsServiceId, bot_id: row.botId });
  }

  /** The setup script's push: progress counts for the stale rule; complete/error make the machine look now. */
  async callback(id: string, event: CallbackEvent, message: string): Promise<void> {
    return this.exclusive(() => this.doCallback(id, event, message));
  }

  private async doCallback(id: string, event: CallbackEvent, message: string): Promise<void> {
    const ctx = this.ctxFor(id);
    const row = await this.load(ctx, id);
    if (row.status !== "INSTALLING") return;
    if (event === "progress") {
      await writeDeployment(
        ctx.db,
        id,
        row.updatedAt,
        { lastProgressAt: ctx.now() },
        [{ type: "script_progress", stage: row.stage, message: message || "progress" }],
        ctx.now(),
      );
    } else {
      await this.ctx.storage.setAlarm(Date.now());
    }
  }

  // ---------------------------------------------------------------- alarm

  async alarm(): Promise<void> {
    return this.exclusive(() => this.runAlarm());
  }

  private async runAlarm(): Promise<void> {
    const id = await this.ctx.storage.get<string>(ID_KEY);
    if (!id) return;
    const ctx = this.ctxFor(id);
    const deps = createDeployDeps(this.env, id);
    const timings = this.timings(deps);
    for (let i = 0; i < MAX_STAGES_PER_ALARM; i++) {
      let row = await getDeployment(ctx.db, id);
      if (!row || isTerminalStatus(row.status as DeploymentStatus)) return;
      if (row.status === "PENDING") {
        const started = begin(machineOf(row), ctx.now());
        if (!(await writeDeployment(ctx.db, id, row.updatedAt, columnsOf(started, ctx.now()), [], ctx.now()))) return;
        row = (await getDeployment(ctx.db, id))!;
      }
      const wakeAtMs = await this.step(ctx, deps, timings, row);
      if (wakeAtMs === "conflict") {
        // Someone else wrote the row meanwhile: look again shortly (a cancel makes the next look stop).
        await this.ctx.storage.setAlarm(Date.now() + 1000);
        return;
      }
      if (wakeAtMs === null) return;
      if (wakeAtMs > ctx.now()) {
        await this.ctx.storage.setAlarm(wakeAtMs);
        return;
      }
    }
    await this.ctx.storage.setAlarm(Date.now() + 1000); // yield, then carry on
  }

  /** Runs the next stage once and records the result. Returns when to run again (null: stop). */
  private async step(ctx: Ctx, deps: DeployDeps, timings: StageTimings, row: DeploymentRow): Promise<number | null | "conflict"> {
    const stage = nextStage(row.stage as MachineState["stage"]);
    if (!stage) return null;
    let readUpdatedAt = row.updatedAt;
    let current = row;
    const env = {
      ctx,
      deps,
      recordIntent: async (patch: DeploymentPatch) => {
        if (!(await writeDeployment(ctx.db, row.id, readUpdatedAt, patch, [], ctx.now())))
          throw new AppError("conflict", "deployment changed under the running stage");
        current = (await getDeployment(ctx.db, row.id))!;
        readUpdatedAt = current.updatedAt;
      },
    };
    let outcome: StageOutcome;
    let patch: DeploymentPatch = {};
    let log: string | undefined;
    try {
      const run = await STAGE_EXECUTORS[stage](row, env);
      outcome = run.outcome;
      patch = run.patch ?? {};
      log = run.log;
    } catch (err) {
      if (err instanceof AppError && err.code === "conflict") return "conflict";
      const message = err instanceof Error ? err.message : String(err);
      outcome =
        err instanceof ProviderError && !err.transient
          ? { kind: "failed", error: `${stage}: ${message}` }
          : { kind: "transient_error", error: message };
    }
    const nowMs = ctx.now();
    const next = advance(machineOf(current), outcome, nowMs, timings);
    const events: DeploymentEventInput[] = [];
    if (next.event) {
      const level = next.event.type === "deployment_failed" ? "error" : next.event.type === "stage_retry" ? "warn" : "info";
      events.push({
        type: next.event.type,
        stage: next.event.stage,
        message: log && next.event.type !== "deployment_failed" ? `${next.event.message}: ${log}` : next.event.message,
        level,
      });
    }
    if (!(await writeDeployment(ctx.db, row.id, readUpdatedAt, { ...patch, ...columnsOf(next.state, nowMs) }, events, nowMs)))
      return "conflict";
    if (next.event) {
      const fields = { stage: next.event.stage, status: next.state.status, message: next.event.message };
      if (next.event.type === "deployment_failed") ctx.log.error("deployment stage", fields);
      else ctx.log.info("deployment stage", fields);
    }
    return next.wakeAtMs;
  }
}
