/**
 * One Durable Object per deployment: runs the provisioning stage machine.
 *
 * The deployment row in D1 is the durable state (stage, intent records); this
 * object keeps only its one alarm and knows its deployment from its own name
 * (see identity.ts). Each alarm runs stages until one has to wait, then arms
 * the alarm for the next poll. A restart loses nothing: the object re-arms
 * itself on start, and the cron sweeper kicks any active deployment whose
 * alarm was lost. Writes are conditional on the row's `updated_at`, so an
 * alarm step and a cancel/retry cannot both land.
 */
import { DurableObject } from "cloudflare:workers";
import {
  advance,
  begin,
  cancel,
  DEFAULT_TIMINGS,
  expireIfStale,
  isTerminalStatus,
  nextStage,
  type OperatorResult,
  retry,
  type StageOutcome,
  type StageTimings,
  type Step,
} from "../core/deployment-machine";
import { streamName } from "../core/stream";
import { getBot } from "../db/bots";
import {
  type DeploymentEventInput,
  type DeploymentPatch,
  deleteDeploymentRows,
  getDeployment,
  machineColumns,
  machineStateOf,
} from "../db/deployments";
import type { DeploymentRow } from "../db/schema";
import { AppError, asRpcResult, loadOr404, type RpcResult } from "../errors";
import { ProviderError } from "../providers/http";
import { removeBot } from "../services/bots";
import { type Ctx, createCtx } from "../services/context";
import { createDeployDeps, type DeployDeps } from "../services/deploy-deps";
import { writeAndPublish } from "../services/deployment-events";
import { STAGE_EXECUTORS } from "../services/deployment-stages";
import { observeSeconds } from "../services/metrics";
import { destroyStream } from "../services/streams";
import { resolveObjectName } from "./identity";
import { runSerialized, SerialQueue } from "./serial";

/** Stages one alarm may run back to back before yielding (each is a few external calls). */
const MAX_STAGES_PER_ALARM = 12;

export type CallbackEvent = "progress" | "complete" | "error";

export class DeploymentRunner extends DurableObject<Env> {
  /** This object's deployment; null only for an instance nobody ever addressed by name. */
  private deploymentId: string | null = null;
  /**
   * Alarm steps and RPCs (callback, cancel, retry, teardown) run one at a time:
   * a setup-script callback must not slip between a stage's start and its write.
   */
  private readonly serial = new SerialQueue();

  constructor(state: DurableObjectState, env: Env) {
    super(state, env);
    state.blockConcurrencyWhile(async () => {
      this.deploymentId = await resolveObjectName(state, env.DEPLOYMENT_RUNNER);
      // Re-arm on start: a killed runtime may have lost the alarm.
      if (!this.deploymentId || (await state.storage.getAlarm()) !== null) return;
      const row = await getDeployment(createCtx(env).db, this.deploymentId);
      if (row && !isTerminalStatus(row.status)) await state.storage.setAlarm(Date.now());
    });
  }

  /** Every RPC and the alarm, one at a time, with a context whose log lines carry this deployment's id. */
  private serialized<T>(work: (ctx: Ctx, id: string) => Promise<T>): Promise<T> {
    const owner = { name: this.deploymentId, idField: "deployment_id", component: "deployment", kind: "deployment runner" };
    return runSerialized(this.serial, this.env, owner, work);
  }

  private load(ctx: Ctx, id: string): Promise<DeploymentRow> {
    return loadOr404("deployment", id, getDeployment(ctx.db, id));
  }

  // ---------------------------------------------------------------- RPC

  /** Starts (or resumes) the machine. Idempotent: a pending deployment begins, any other keeps its state. */
  start(): Promise<void> {
    return this.serialized(async (ctx, id) => {
      const row = await this.load(ctx, id);
      if (row.status === "PENDING") {
        await writeAndPublish(ctx, id, row.updatedAt, machineColumns(begin(machineStateOf(row), ctx.now()), ctx.now()), [], ctx.now());
      }
      await this.ctx.storage.setAlarm(Date.now());
    });
  }

  /** Sweeper: re-arm a lost alarm, and apply the 45-minute stale rule. */
  kick(): Promise<"rearmed" | "stale" | "ok"> {
    return this.serialized(async (ctx, id) => {
      const row = await getDeployment(ctx.db, id);
      if (!row || isTerminalStatus(row.status)) return "ok";
      const stale = expireIfStale(machineStateOf(row), ctx.now());
      if (stale) {
        await this.record(ctx, row, {}, stale);
        return "stale";
      }
      if ((await this.ctx.storage.getAlarm()) === null) {
        await this.ctx.storage.setAlarm(Date.now());
        ctx.log.warn("deployment alarm was lost; re-armed by the sweeper");
        return "rearmed";
      }
      return "ok";
    });
  }

  /** seed 002's retryDeploy: start clean, reusing live resources (stages find them by their intent records). */
  retry(): Promise<RpcResult<DeploymentRow>> {
    return this.serialized((ctx, id) =>
      asRpcResult(async () => {
        const row = await this.load(ctx, id);
        const m = operatorTransition(retry(machineStateOf(row), ctx.now()), row);
        // Re-check the rebuild and the host key: the retry may follow a failure there (a fresh rebuild, a fresh intent).
        const patch = { ...machineColumns(m, ctx.now()), rebuildRequestedAt: null, rebuildActionId: null, hostKeySha256: null };
        const event: DeploymentEventInput = { type: "deployment_retry", stage: null, message: "retry: restarting the stage machine" };
        if (!(await writeAndPublish(ctx, id, row.updatedAt, patch, [event], ctx.now()))) {
          throw new AppError("conflict", "the deployment changed while retrying; try again");
        }
        ctx.log.info("deployment retry");
        await this.ctx.storage.setAlarm(Date.now());
        return this.load(ctx, id);
      }),
    );
  }

  /** Stops the machine: ERROR with error `cancelled`. Resources stay until DELETE. */
  cancel(): Promise<RpcResult<DeploymentRow>> {
    return this.serialized((ctx, id) =>
      asRpcResult(async () => {
        const row = await this.load(ctx, id);
        const m = operatorTransition(cancel(machineStateOf(row), ctx.now()), row);
        await this.ctx.storage.deleteAlarm();
        const event: DeploymentEventInput = {
          type: "deployment_cancelled",
          stage: row.stage,
          message: "cancelled by operator",
          level: "warn",
        };
        if (!(await writeAndPublish(ctx, id, row.updatedAt, machineColumns(m, ctx.now()), [event], ctx.now()))) {
          throw new AppError("conflict", "the deployment changed while cancelling; try again");
        }
        ctx.log.info("deployment cancelled", { stage: row.stage });
        return this.load(ctx, id);
      }),
    );
  }

  /** DELETE: stop, destroy the VPS, delete the OpenRouter key, remove the bot and its tokens, forget the deployment. */
  teardown(): Promise<RpcResult<null>> {
    return this.serialized((ctx, id) =>
      asRpcResult(async () => {
        const row = await this.load(ctx, id);
        await this.ctx.storage.deleteAlarm();
        const deps = createDeployDeps(this.env, id);
        try {
          const serverId = deps.provider.serverToDestroy({ orderId: row.vpsOrderId, serviceId: row.vpsServiceId });
          if (serverId) await deps.provider.destroy(serverId);
          if (row.vpsName) await deps.provider.deleteSshKey(row.vpsName);
          const key =
            row.openrouterKeyHash ?? (row.openrouterKeyName ? (await deps.openrouter.findByName(row.openrouterKeyName))?.hash : null);
          if (key) await deps.openrouter.delete(key);
        } catch (err) {
          const message = err instanceof Error ? err.message : String(err);
          await writeAndPublish(
            ctx,
            id,
            row.updatedAt,
            {},
            [{ type: "teardown_failed", stage: row.stage, message, level: "error" }],
            ctx.now(),
          );
          throw new AppError("service_unavailable", `teardown failed; nothing was forgotten, try DELETE again: ${message}`, { id });
        }
        const bot = row.botId ? await getBot(ctx.db, row.botId) : undefined;
        if (bot) await removeBot(ctx, bot);
        await deleteDeploymentRows(ctx.db, id);
        await destroyStream(ctx, streamName("deployment", id));
        await this.ctx.storage.deleteAll();
        ctx.log.info("deployment torn down", { vps_service_id: row.vpsServiceId, bot_id: row.botId });
        return null;
      }),
    );
  }

  /** The setup script's push: progress counts for the stale rule; complete/error make the machine look now. */
  callback(event: CallbackEvent, message: string): Promise<void> {
    return this.serialized(async (ctx, id) => {
      const row = await this.load(ctx, id);
      if (row.status !== "INSTALLING") return;
      if (event === "progress") {
        const log: DeploymentEventInput = { type: "script_progress", stage: row.stage, message: message || "progress" };
        await writeAndPublish(ctx, id, row.updatedAt, { lastProgressAt: ctx.now() }, [log], ctx.now());
      } else {
        await this.ctx.storage.setAlarm(Date.now());
      }
    });
  }

  // ---------------------------------------------------------------- alarm

  alarm(): Promise<void> {
    if (!this.deploymentId) return Promise.resolve(); // never addressed by name: nothing to run
    return this.serialized(async (ctx, id) => {
      const deps = createDeployDeps(this.env, id);
      const timings = timingsOf(deps);
      for (let i = 0; i < MAX_STAGES_PER_ALARM; i++) {
        let row = await getDeployment(ctx.db, id);
        if (!row || isTerminalStatus(row.status)) return;
        if (row.status === "PENDING") {
          const started = begin(machineStateOf(row), ctx.now());
          if (!(await writeAndPublish(ctx, id, row.updatedAt, machineColumns(started, ctx.now()), [], ctx.now()))) return;
          row = await this.load(ctx, id);
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
    });
  }

  /** Runs the next stage once and records the result. Returns when to run again (null: stop). */
  private async step(ctx: Ctx, deps: DeployDeps, timings: StageTimings, row: DeploymentRow): Promise<number | null | "conflict"> {
    const stage = nextStage(row.stage);
    if (!stage) return null;
    let current = row;
    const env = {
      ctx,
      deps,
      recordIntent: async (patch: DeploymentPatch) => {
        if (!(await writeAndPublish(ctx, row.id, current.updatedAt, patch, [], ctx.now()))) {
          throw new AppError("conflict", "deployment changed under the running stage");
        }
        current = await this.load(ctx, row.id);
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
    const next = advance(machineStateOf(current), outcome, ctx.now(), timings);
    return (await this.record(ctx, current, patch, next, log)) ? next.wakeAtMs : "conflict";
  }

  /** Writes a machine step (its columns, the stage's own patch, its log line) and logs it. False on a lost race. */
  private async record(ctx: Ctx, row: DeploymentRow, patch: DeploymentPatch, next: Step, detail?: string): Promise<boolean> {
    const nowMs = ctx.now();
    const events: DeploymentEventInput[] = [];
    if (next.event) {
      const { type, stage, message } = next.event;
      const level = type === "deployment_failed" ? "error" : type === "stage_retry" ? "warn" : "info";
      events.push({ type, stage, message: detail && type !== "deployment_failed" ? `${message}: ${detail}` : message, level });
    }
    if (!(await writeAndPublish(ctx, row.id, row.updatedAt, { ...patch, ...machineColumns(next.state, nowMs) }, events, nowMs)))
      return false;
    const stageEnded = next.event?.type === "stage_completed" || next.event?.type === "deployment_ready";
    if (stageEnded && next.event?.stage && row.stageStartedAt !== null) {
      observeSeconds("clawbot_deployment_stage_seconds", { stage: next.event.stage }, (nowMs - row.stageStartedAt) / 1000);
    }
    if (next.event) {
      const fields = { stage: next.event.stage, status: next.state.status, message: next.event.message };
      if (next.event.type === "deployment_failed") ctx.log.error("deployment stage", fields);
      else ctx.log.info("deployment stage", fields);
    }
    return true;
  }
}

function timingsOf(deps: DeployDeps): StageTimings {
  return {
    ...DEFAULT_TIMINGS,
    pollIntervalMs: deps.config.pollIntervalMs,
    stageTimeoutMs: { ...DEFAULT_TIMINGS.stageTimeoutMs, setup_complete: deps.config.setupTimeoutMs },
  };
}

/** The machine's answer to an operator action, or the 409 it means. */
function operatorTransition(result: OperatorResult, row: DeploymentRow) {
  if (!result.ok) throw new AppError("invalid_transition", result.message, { status: row.status });
  return result.state;
}
