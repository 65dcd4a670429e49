/** Deployment queries. Writes are conditional on `updated_at`, so an alarm step and a cancel/retry never both land. */
import { and, asc, eq, gt, inArray, sql } from "drizzle-orm";
import {
  DEPLOYMENT_STATUSES,
  type DeploymentStage,
  type DeploymentStatus,
  isTerminalStatus,
  type MachineState,
} from "../core/deployment-machine";
import { timeOrderedId } from "../crypto/ids";
import { runBatch } from "./batch";
import { changedRows, type Db } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { type DeploymentRow, deploymentEvents, deployments } from "./schema";

const ACTIVE_STATUSES = DEPLOYMENT_STATUSES.filter((s) => !isTerminalStatus(s));

/** Columns a stage or an operator action may change. */
export type DeploymentPatch = Partial<Omit<DeploymentRow, "id" | "createdAt">>;

export interface DeploymentEventInput {
  type: string;
  stage: DeploymentStage | null;
  message: string;
  level?: "info" | "warn" | "error";
}

/** The fields of a deployment row the stage machine decides on. */
export const machineStateOf = (d: DeploymentRow): MachineState => ({
  status: d.status,
  stage: d.stage,
  stageStartedAtMs: d.stageStartedAt,
  lastProgressAtMs: d.lastProgressAt,
  transientErrors: d.transientErrors,
  error: d.error,
});

/** A machine state as the columns that store it. */
export const machineColumns = (m: MachineState, nowMs: number): DeploymentPatch => ({
  status: m.status,
  stage: m.stage,
  stageStartedAt: m.stageStartedAtMs,
  lastProgressAt: m.lastProgressAtMs,
  transientErrors: m.transientErrors,
  error: m.error,
  finishedAt: isTerminalStatus(m.status) ? nowMs : null,
});

export async function insertDeployment(db: Db, row: typeof deployments.$inferInsert): Promise<void> {
  await runBatch(db, [
    db.insert(deployments).values(row),
    db.insert(deploymentEvents).values({
      deploymentId: row.id,
      type: "deployment_created",
      stage: null,
      message: `deployment created (${row.provider}, ${row.plan} in ${row.region})`,
      createdAt: row.createdAt,
    }),
  ]);
}

export const getDeployment = (db: Db, id: string): Promise<DeploymentRow | undefined> =>
  db.select().from(deployments).where(eq(deployments.id, id)).get();

export const getDeploymentByIdempotencyKey = (db: Db, key: string) =>
  db.select().from(deployments).where(eq(deployments.idempotencyKey, key)).get();

export async function listDeployments(db: Db, f: { status?: DeploymentStatus; limit: number; cursor: Cursor | null }) {
  const rows = await db
    .select()
    .from(deployments)
    .where(and(f.status ? eq(deployments.status, f.status) : undefined, afterCursor(deployments, f.cursor)))
    .orderBy(...newestFirst(deployments))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

export async function listDeploymentEvents(db: Db, id: string, afterId: number, limit: number) {
  return db
    .select()
    .from(deploymentEvents)
    .where(and(eq(deploymentEvents.deploymentId, id), gt(deploymentEvents.id, afterId)))
    .orderBy(asc(deploymentEvents.id))
    .limit(limit + 1);
}

export async function listActiveDeploymentIds(db: Db, limit: number): Promise<string[]> {
  const rows = await db.select({ id: deployments.id }).from(deployments).where(inArray(deployments.status, ACTIVE_STATUSES)).limit(limit);
  return rows.map((r) => r.id);
}

/** Writes `patch` (and its log lines) only if nobody wrote the row since it was read at `readUpdatedAt`. */
export async function writeDeployment(
  db: Db,
  id: string,
  readUpdatedAt: number,
  patch: DeploymentPatch,
  events: DeploymentEventInput[],
  nowMs: number,
): Promise<boolean> {
  const updatedAt = Math.max(nowMs, readUpdatedAt + 1); // strictly increasing: the next reader's guard
  const writeId = timeOrderedId();
  const results = await runBatch(db, [
    db
      .update(deployments)
      .set({ ...patch, updatedAt, writeId })
      .where(and(eq(deployments.id, id), eq(deployments.updatedAt, readUpdatedAt))),
    ...events.map(
      (e) =>
        sql`INSERT INTO deployment_events (deployment_id, level, type, stage, message, created_at)
          SELECT ${id}, ${e.level ?? "info"}, ${e.type}, ${e.stage}, ${e.message}, ${nowMs}
          WHERE EXISTS (SELECT 1 FROM deployments WHERE id = ${id} AND write_id = ${writeId})`,
    ),
  ]);
  return changedRows(results[0]) === 1;
}

export async function deleteDeploymentRows(db: Db, id: string): Promise<void> {
  await runBatch(db, [
    db.delete(deploymentEvents).where(eq(deploymentEvents.deploymentId, id)),
    db.delete(deployments).where(eq(deployments.id, id)),
  ]);
}

/** Deployments per status (the metrics scrape). */
export async function countDeploymentsByStatus(db: Db): Promise<{ status: string; n: number }[]> {
  return db.select({ status: deployments.status, n: sql<number>`count(*)` }).from(deployments).groupBy(deployments.status).all();
}
