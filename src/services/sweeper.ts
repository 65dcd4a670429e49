/**
 * Cron safety net (every minute). Alarms do the real-time work; this
 * reconciles whatever an alarm missed: overdue tasks, bots whose socket died
 * with the runtime, tasks of bots that never came back, due retries.
 * Every step is bounded so one run stays well inside a cron's CPU budget, and
 * each phase and each item is isolated: one failure is logged with its id and
 * the sweep goes on.
 */
import { nextConnectedPage } from "../db/bots";
import { listActiveDeploymentIds } from "../db/deployments";
import { overdueScheduleIds } from "../db/schedules";
import { findOrphanedHeldTasks, findOverdueTasks, findTasksOfLostBots, queueDepthByCapability } from "../db/tasks";
import { AppError } from "../errors";
import { botSession, deploymentRunner, scheduleRunner } from "../objects/stubs";
import { cleanup } from "./cleanup";
import type { Ctx } from "./context";
import { dispatchDueTasks, settleOutcome } from "./dispatch";
import { applyTaskAction } from "./lifecycle";
import { publishFleet } from "./streams";

/** How late past its deadline a task must be before the sweeper steps in (the alarm goes first). */
const SWEEP_SLACK_MS = 5_000;
const SWEEP_BATCH = 100;
/**
 * Connected bots whose socket one sweep checks: a page from a cursor that goes round the fleet, so
 * the cost per minute does not grow with the fleet (1,000 connected bots are each checked every 10
 * minutes). A socket lost otherwise is found at once: its close, its grace alarm, its deadline alarm.
 */
export const SOCKET_CHECKS_PER_SWEEP = 100;
/** How far past its armed due time a schedule must be before the sweeper re-arms it (its alarm goes first). */
const SCHEDULE_SLACK_MS = 30_000;
/** A deployment runner busy with a slow provider call is alive: the sweep does not wait for it longer than this. */
const KICK_TIMEOUT_MS = 5_000;

export interface SweepReport {
  timedOut: number;
  lostBotTasks: number;
  botsChecked: number;
  dispatched: number;
  deploymentsKicked: number;
  /** Schedules whose alarm was lost, re-armed (they run what is due at once, under their catch_up). */
  schedulesRearmed: number;
  /** Durable Objects this sweep called (socket checks, deployment kicks, offers of due tasks are in `dispatched`). */
  wakeUps: number;
  /** Phases or items that failed (logged with their ids); the rest of the sweep still ran. */
  failures: number;
}

/** The last sweep's report (the benchmark reads it under BENCH_MODE; one isolate under wrangler dev). */
export const lastSweep: { report: SweepReport | null; finishedAtMs: number } = { report: null, finishedAtMs: 0 };

export async function sweep(ctx: Ctx): Promise<SweepReport> {
  const report: SweepReport = {
    timedOut: 0,
    lostBotTasks: 0,
    botsChecked: 0,
    dispatched: 0,
    deploymentsKicked: 0,
    schedulesRearmed: 0,
    wakeUps: 0,
    failures: 0,
  };

  /** Runs one phase; a failure is logged and counted, never thrown, so the next phase still runs. */
  const phase = async (name: string, work: () => Promise<void>, id?: string) => {
    try {
      await work();
    } catch (err) {
      report.failures++;
      ctx.log.error(id === undefined ? "sweep phase failed" : "sweep item failed", { phase: name, id, error: String(err) });
    }
  };
  /** A phase over a listed set of items, each isolated from the others. */
  const eachOf = <T>(name: string, list: () => Promise<T[]>, idOf: (item: T) => string, work: (item: T) => Promise<void>) =>
    phase(name, async () => {
      for (const item of await list()) await phase(name, () => work(item), idOf(item));
    });
  /** The same, all items at once: for calls to Durable Objects, none of which should wait for another. */
  const eachAtOnce = (name: string, list: () => Promise<string[]>, work: (id: string) => Promise<void>) =>
    phase(name, async () => {
      await Promise.all((await list()).map((id) => phase(name, () => work(id), id)));
    });

  await eachOf(
    "overdue_tasks",
    () => findOverdueTasks(ctx.db, ctx.now(), SWEEP_SLACK_MS, SWEEP_BATCH),
    (task) => task.id,
    async (task) => {
      if (await failHeldTask(ctx, task.id, "timeout", `no result within ${task.timeoutSeconds}s (found by sweeper)`)) report.timedOut++;
    },
  );

  // A page of "connected" bots, in turn: each object says whether its socket survived (and corrects D1 if not).
  await eachAtOnce(
    "connected_bots",
    () => nextConnectedPage(ctx.db, SOCKET_CHECKS_PER_SWEEP),
    async (botId) => {
      report.botsChecked++;
      report.wakeUps++;
      await botSession(ctx.env, botId).checkSocket();
    },
  );

  await eachOf(
    "lost_bot_tasks",
    async () => [
      ...(await findTasksOfLostBots(ctx.db, ctx.now(), ctx.config.botReconnectGraceMs + SWEEP_SLACK_MS, SWEEP_BATCH)),
      ...(await findOrphanedHeldTasks(ctx.db, SWEEP_BATCH)),
    ],
    (task) => task.id,
    async (task) => {
      if (await failHeldTask(ctx, task.id, "bot_lost", `bot ${task.botId} is gone (found by sweeper)`)) report.lostBotTasks++;
    },
  );

  await phase("due_tasks", async () => {
    report.dispatched = await dispatchDueTasks(ctx, SWEEP_BATCH);
  });

  // Deployments: re-arm lost alarms and apply the 45-minute stale rule (each runner decides), all at once:
  // a runner waits behind its own step in flight, and one slow provider call must not hold up the sweep.
  await eachAtOnce(
    "deployments",
    () => listActiveDeploymentIds(ctx.db, SWEEP_BATCH),
    async (id) => {
      report.wakeUps++;
      const kicked = await withTimeout(deploymentRunner(ctx.env, id).kick(), KICK_TIMEOUT_MS);
      if (kicked === "timeout") ctx.log.info("deployment runner busy; not waited for", { deployment_id: id });
      else if (kicked !== "ok") report.deploymentsKicked++;
    },
  );

  // Schedules: only those whose armed due time is long past (a lost alarm), so a healthy fleet of schedules costs one query.
  await eachAtOnce(
    "schedules",
    () => overdueScheduleIds(ctx.db, ctx.now() - SCHEDULE_SLACK_MS, SWEEP_BATCH),
    async (id) => {
      report.wakeUps++;
      await scheduleRunner(ctx.env, id).arm(false);
      report.schedulesRearmed++;
      ctx.log.warn("schedule alarm was late or lost; re-armed by the sweeper", { schedule_id: id });
    },
  );

  // Dashboards: queue depth per capability on the fleet stream, once per sweep.
  await phase("queue_depth", async () => {
    await publishFleet(ctx, { type: "queue", data: { capabilities: await queueDepthByCapability(ctx.db, ctx.now(), 100) } });
  });

  // Retention: old finished work, logs and streams, bounded per run.
  await phase("cleanup", async () => {
    await cleanup(ctx);
  });

  ctx.log.info("sweep finished", { ...report });
  lastSweep.report = report;
  lastSweep.finishedAtMs = ctx.now();
  return report;
}

/** The promise's value, or "timeout" after `ms` (the promise itself runs on; its failure is still logged by its phase). */
function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** Fails a held task for retry; false when someone (its alarm, its bot) settled it first. */
async function failHeldTask(ctx: Ctx, taskId: string, code: "timeout" | "bot_lost", error: string): Promise<boolean> {
  try {
    const outcome = await applyTaskAction(ctx, taskId, { kind: "fail", code, error, retry: true });
    await settleOutcome(ctx, { ...outcome, notifyBot: true });
    return true;
  } catch (err) {
    if (err instanceof AppError) return false;
    throw err;
  }
}
