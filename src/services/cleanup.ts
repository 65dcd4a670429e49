/**
 * The retention cleanup (run by the cron with the sweep): finished jobs (and a
 * project's earlier initialization runs) with their tasks, events and streams,
 * finished standalone tasks, old events and deployment log lines, and the
 * fleet stream's old events, and the artifacts of removed jobs (bytes in R2 and rows) with uploads
 * whose URL expired before their bytes came — everything older than `RETENTION_DAYS` (30), in
 * bounded batches per run. Logs what it removed.
 */
import { FLEET_STREAM, streamName } from "../core/stream";
import { deleteExpiredLogs, deleteExpiredTasks, deleteJobs, findExpiredJobIds } from "../db/cleanup";
import { eventStream } from "../objects/stubs";
import { removeExpiredArtifacts } from "./artifacts";
import type { Ctx } from "./context";
import { destroyStream } from "./streams";

/** At most this many jobs (each with its stream), and this many rows of each other kind, per run. */
export const CLEANUP_JOBS_PER_RUN = 100;
export const CLEANUP_ROWS_PER_RUN = 1000;
/** R2 deletes at most 1,000 keys per call; one call per run. */
export const CLEANUP_ARTIFACTS_PER_RUN = 500;

export interface CleanupReport {
  jobs: number;
  tasks: number;
  events: number;
  deploymentLogs: number;
  streams: number;
  fleetEvents: number;
  /** Rows of the streams' D1 copy. */
  streamCopies: number;
  /** Artifacts (bytes and rows) of removed jobs, and uploads that never came. */
  artifacts: number;
  failures: number;
}

export async function cleanup(ctx: Ctx): Promise<CleanupReport> {
  const cutoffMs = ctx.now() - ctx.config.retentionDays * 24 * 60 * 60 * 1000;
  const report: CleanupReport = {
    jobs: 0,
    tasks: 0,
    events: 0,
    deploymentLogs: 0,
    streams: 0,
    fleetEvents: 0,
    streamCopies: 0,
    artifacts: 0,
    failures: 0,
  };
  const step = async (name: string, work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      report.failures++;
      ctx.log.error("cleanup step failed", { step: name, error: String(err) });
    }
  };
  await step("jobs", async () => {
    const ids = await findExpiredJobIds(ctx.db, cutoffMs, CLEANUP_JOBS_PER_RUN);
    const removed = await deleteJobs(ctx.db, ids);
    report.jobs += removed.jobs;
    report.tasks += removed.tasks;
    report.events += removed.events;
    for (const id of ids) {
      await destroyStream(ctx, streamName("job", id));
      report.streams++;
    }
  });
  await step("tasks", async () => {
    report.tasks += await deleteExpiredTasks(ctx.db, cutoffMs, CLEANUP_ROWS_PER_RUN);
  });
  // After the jobs and tasks: their artifacts are found by their job (or task) being gone.
  await step("artifacts", async () => {
    report.artifacts += await removeExpiredArtifacts(ctx, CLEANUP_ARTIFACTS_PER_RUN);
  });
  await step("logs", async () => {
    const removed = await deleteExpiredLogs(ctx.db, cutoffMs, CLEANUP_ROWS_PER_RUN);
    report.events += removed.events;
    report.deploymentLogs += removed.deploymentLogs;
    report.streamCopies += removed.streamCopies;
  });
  await step("fleet_stream", async () => {
    report.fleetEvents += await eventStream(ctx.env, FLEET_STREAM).prune(cutoffMs, CLEANUP_ROWS_PER_RUN);
  });
  ctx.log.info("cleanup finished", { ...report, retention_days: ctx.config.retentionDays });
  return report;
}
