/** Idempotency keys live 24 hours: an older key is released (cleared on its resource) so it can be used again. */
import { and, eq, lt } from "drizzle-orm";
import type { Db } from "./client";
import { deployments, jobs, projects, schedules, tasks, workflows } from "./schema";

const TABLES = { task: tasks, workflow: workflows, deployment: deployments, job: jobs, project: projects, schedule: schedules } as const;
export type KeyedResource = keyof typeof TABLES;

/** Clears `key` on the resource that used it before `olderThanMs`; a younger use keeps it. */
export async function releaseExpiredKey(db: Db, kind: KeyedResource, key: string, olderThanMs: number): Promise<void> {
  const table = TABLES[kind];
  await db
    .update(table)
    .set({ idempotencyKey: null })
    .where(and(eq(table.idempotencyKey, key), lt(table.createdAt, olderThanMs)));
}
