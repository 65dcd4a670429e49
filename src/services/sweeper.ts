/**
 * Cron safety net (every minute). Alarms do the real-time work; this
 * reconciles whatever an alarm missed: overdue tasks, bots whose socket died
 * with the runtime, tasks of bots that never came back, due retries.
 * Every step is bounded so one run stays well inside a cron's CPU budget.
 */
import { listConnectedBotIds } from "../db/bots";
import { listActiveDeploymentIds } from "../db/deployments";
import { findOrphanedHeldTasks, findOverdueTasks, findTasksOfLostBots } from "../db/tasks";
import { AppError } from "../errors";
import { botStub, type Ctx } from "./context";
import { dispatchDueTasks, settleOutcome } from "./dispatch";
import { applyTaskAction } from "./lifecycle";

/** How late past its deadline a task must be before the sweeper steps in (the alarm goes first). */
const SWEEP_SLACK_MS = 5_000;
const SWEEP_BATCH = 100;

export interface SweepReport {
  timedOut: number;
  lostBotTasks: number;
  botsChecked: number;
  dispatched: number;
  deploymentsKicked: number;
}

export async function sweep(ctx: Ctx): Promise<SweepReport> {
  const report: SweepReport = { timedOut: 0, lostBotTasks: 0, botsChecked: 0, dispatched: 0, deploymentsKicked: 0 };
  const nowMs = ctx.now();

  for (const task of await findOverdueTasks(ctx.db, nowMs, SWEEP_SLACK_MS, SWEEP_BATCH)) {
    if (await settleQuietly(ctx, task.id, "timeout", `no result within ${task.timeoutSeconds}s (found by sweeper)`)) report.timedOut++;
  }

  // Ask each "connected" bot's object whether its socket survived; it corrects D1 if not.
  for (const botId of await listConnectedBotIds(ctx.db)) {
    await botStub(ctx, botId)
      .wake(botId)
      .catch((err) => ctx.log.warn("sweeper could not reach bot", { bot_id: botId, error: String(err) }));
    report.botsChecked++;
  }

  const lost = [
    ...(await findTasksOfLostBots(ctx.db, ctx.now(), ctx.config.botReconnectGraceMs + SWEEP_SLACK_MS, SWEEP_BATCH)),
    ...(await findOrphanedHeldTasks(ctx.db, SWEEP_BATCH)),
  ];
  for (const task of lost) {
    if (await settleQuietly(ctx, task.id, "bot_lost", `bot ${task.botId} is gone (found by sweeper)`)) report.lostBotTasks++;
  }

  report.dispatched = await dispatchDueTasks(ctx, SWEEP_BATCH);

  // Deployments: re-arm lost alarms and apply the 45-minute stale rule (each runner decides).
  for (const id of await listActiveDeploymentIds(ctx.db, SWEEP_BATCH)) {
    const stub = ctx.env.DEPLOYMENT_RUNNER.get(ctx.env.DEPLOYMENT_RUNNER.idFromName(id));
    const result = await stub
      .kick(id)
      .catch((err) => (ctx.log.warn("sweeper could not reach deployment", { deployment_id: id, error: String(err) }), "ok"));
    if (result !== "ok") report.deploymentsKicked++;
  }
  ctx.log.info("sweep finished", { ...report });
  return report;
}

async function settleQuietly(ctx: Ctx, taskId: string, code: "timeout" | "bot_lost", error: string): Promise<boolean> {
  try {
    const outcome = await applyTaskAction(ctx, taskId, { kind: "fail", code, error, retry: true });
    await settleOutcome(ctx, { ...outcome, notifyBot: true });
    return true;
  } catch (err) {
    // Someone else (the bot's alarm, the bot itself) settled it first: nothing to do.
    if (err instanceof AppError) return false;
    throw err;
  }
}
