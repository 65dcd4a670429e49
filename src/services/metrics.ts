/**
 * Counting, cheaply: each isolate (the Worker, each Durable Object) adds to a buffer in memory, and
 * `flushMetrics` sends what piled up to the one MetricsStore at most once a second — called at the end
 * of a request, a bot message, an alarm and a sweep. What an isolate counted in its last second is lost
 * if it is killed before its next flush; everything flushed survives restarts (the store's SQLite).
 * The D1 round trips the isolate made since its last flush go with each flush.
 */
import { BOT_STATUSES } from "../core/bot-status";
import { DEPLOYMENT_STATUSES } from "../core/deployment-machine";
import {
  emptyHistogram,
  type HistogramCounts,
  histogramSeries,
  type Labels,
  labelText,
  type MetricName,
  observeInto,
  type Series,
} from "../core/metrics";
import type { TaskPatch } from "../core/task-machine";
import { countBotsByStatus } from "../db/bots";
import { d1RoundTrips } from "../db/client";
import { countDeploymentsByStatus } from "../db/deployments";
import type { TaskRow } from "../db/schema";
import { queueDepthByCapability } from "../db/tasks";
import type { Ctx } from "./context";

const FLUSH_INTERVAL_MS = 1000;
const STORE_NAME = "global";

const pending = new Map<string, Series>();
/** Histograms observed since the last flush, by series of labels: an observation costs one key and one increment. */
const pendingHistograms = new Map<string, { name: string; labels: Labels; counts: HistogramCounts }>();
let lastFlushMs = 0;
/** A flush asked for within the interval is made when it ends (so the last counts of a burst are not left waiting). */
let trailing: ReturnType<typeof setTimeout> | null = null;
const d1Flushed = { count: 0, statements: 0 };

function add(series: Series): void {
  const key = `${series.name}|${labelText(series.labels)}`;
  const known = pending.get(key);
  if (known) known.value += series.value;
  else pending.set(key, { ...series, labels: { ...series.labels } });
}

/** What a task's transition counts: completions (with run time), final failures, retried attempts. */
export function countTaskTransition(task: TaskRow, patch: TaskPatch, events: readonly string[]): void {
  const labels = capabilityLabel(task.capability);
  if (events.includes("task_completed")) {
    countMetric("clawbot_tasks_completed_total", labels);
    const startedAtMs = patch.startedAtMs ?? task.startedAt;
    if (startedAtMs !== null && startedAtMs !== undefined && patch.completedAtMs) {
      observeSeconds("clawbot_task_run_seconds", labels, (patch.completedAtMs - startedAtMs) / 1000);
    }
  }
  const code = { error_code: patch.errorCode ?? "unknown" };
  if (events.includes("task_failed")) countMetric("clawbot_tasks_failed_total", { ...labels, ...code });
  if (events.includes("task_retry_scheduled")) countMetric("clawbot_tasks_retried_total", { ...labels, ...code });
}

/** A bot is being sent a task: how long it waited since it was due (created, or its backoff over). */
export function countDispatch(task: TaskRow, nowMs: number): void {
  observeSeconds(
    "clawbot_task_dispatch_latency_seconds",
    capabilityLabel(task.capability),
    (nowMs - Math.max(task.createdAt, task.runAfter)) / 1000,
  );
}

export function countCreated(rows: readonly Pick<TaskRow, "capability">[]): void {
  for (const row of rows) countMetric("clawbot_tasks_created_total", capabilityLabel(row.capability));
}

/** The capability label of a task (a task any bot may run is `(any)`). */
export const capabilityLabel = (capability: string | null) => ({ capability: capability ?? "(any)" });

export function countMetric(name: MetricName, labels: Labels = {}, by = 1): void {
  add({ name, labels, value: by });
}

export function observeSeconds(name: MetricName, labels: Labels, seconds: number): void {
  if (!Number.isFinite(seconds) || seconds < 0) return;
  const key = `${name}|${labelText(labels)}`;
  let h = pendingHistograms.get(key);
  if (!h) {
    h = { name, labels: { ...labels }, counts: emptyHistogram() };
    pendingHistograms.set(key, h);
  }
  observeInto(h.counts, seconds);
}

export const metricsStore = (env: Env) => env.METRICS.getByName(STORE_NAME);

/** Sends the buffer if a second has passed since the last flush (or `force`). Never throws: a failed flush keeps the counts for the next. */
export async function flushMetrics(ctx: Ctx, force = false): Promise<void> {
  const nowMs = Date.now();
  if (!force && nowMs - lastFlushMs < FLUSH_INTERVAL_MS) {
    if (trailing === null) {
      trailing = setTimeout(
        () => {
          trailing = null;
          void flushMetrics(ctx);
        },
        FLUSH_INTERVAL_MS - (nowMs - lastFlushMs),
      );
    }
    return;
  }
  lastFlushMs = nowMs;
  const roundTrips = d1RoundTrips.count - d1Flushed.count;
  const statements = d1RoundTrips.statements - d1Flushed.statements;
  if (roundTrips > 0) add({ name: "clawbot_d1_round_trips_total", labels: {}, value: roundTrips });
  if (statements > 0) add({ name: "clawbot_d1_statements_total", labels: {}, value: statements });
  d1Flushed.count = d1RoundTrips.count;
  d1Flushed.statements = d1RoundTrips.statements;
  for (const h of pendingHistograms.values()) for (const series of histogramSeries(h.name, h.labels, h.counts)) add(series);
  pendingHistograms.clear();
  if (pending.size === 0) return;
  const batch = [...pending.values()];
  pending.clear();
  try {
    await metricsStore(ctx.env).add(batch);
  } catch (err) {
    for (const s of batch) add(s); // counted again next time
    ctx.log.warn("metrics not flushed; kept for the next flush", { series: batch.length, error: String(err) });
  }
}

/** Everything a scrape shows: the stored counters and histograms, and the gauges read from D1 now. */
export async function scrape(ctx: Ctx): Promise<Series[]> {
  await flushMetrics(ctx, true); // this isolate's own latest counts too
  const nowMs = ctx.now();
  const [stored, queue, botsByStatus, deploymentsByStatus] = await Promise.all([
    metricsStore(ctx.env).read(),
    queueDepthByCapability(ctx.db, nowMs, QUEUE_GAUGE_CAPABILITIES),
    countBotsByStatus(ctx.db, nowMs, ctx.config.botStaleAfterMs),
    countDeploymentsByStatus(ctx.db),
  ]);
  const gauges: Series[] = [
    ...queue.flatMap((q) => [
      { name: "clawbot_queue_depth", labels: capabilityLabel(q.capability), value: q.pending },
      { name: "clawbot_queue_oldest_pending_age_seconds", labels: capabilityLabel(q.capability), value: q.oldest_pending_age_s },
    ]),
    ...BOT_STATUSES.map((status) => ({
      name: "clawbot_bots",
      labels: { status },
      value: botsByStatus.find((b) => b.status === status)?.n ?? 0,
    })),
    { name: "clawbot_bots_quarantined", labels: {}, value: botsByStatus.reduce((sum, b) => sum + b.quarantined, 0) },
    ...DEPLOYMENT_STATUSES.map((status) => ({
      name: "clawbot_deployments",
      labels: { status },
      value: deploymentsByStatus.find((d) => d.status === status)?.n ?? 0,
    })),
  ];
  return [...stored, ...gauges];
}

/** Capabilities the queue gauges list at most (the busiest first). */
const QUEUE_GAUGE_CAPABILITIES = 100;
