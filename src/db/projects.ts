/** Project queries (seed 000). A project's initialization runs as a job (`init_job_id`). */
import { and, eq } from "drizzle-orm";
import type { ProjectStatus } from "../core/project";
import type { Db } from "./client";
import { afterCursor, type Cursor, newestFirst, page } from "./pagination";
import { type ProjectRow, projects } from "./schema";

export type ProjectInsert = typeof projects.$inferInsert;

export function getProject(db: Db, id: string): Promise<ProjectRow | undefined> {
  return db.select().from(projects).where(eq(projects.id, id)).get();
}

export function getProjectByIdempotencyKey(db: Db, key: string): Promise<ProjectRow | undefined> {
  return db.select().from(projects).where(eq(projects.idempotencyKey, key)).get();
}

/** The insert, as a statement to ride in the batch that stores its initialization job. */
export const insertProjectStatement = (db: Db, row: ProjectInsert) => db.insert(projects).values(row);

export async function insertProject(db: Db, row: ProjectInsert): Promise<void> {
  await insertProjectStatement(db, row);
}

export async function listProjects(db: Db, f: { status?: ProjectStatus; typeId?: number; limit: number; cursor: Cursor | null }) {
  const rows = await db
    .select()
    .from(projects)
    .where(
      and(
        f.status ? eq(projects.status, f.status) : undefined,
        f.typeId !== undefined ? eq(projects.typeId, f.typeId) : undefined,
        afterCursor(projects, f.cursor),
      ),
    )
    .orderBy(...newestFirst(projects))
    .limit(f.limit + 1);
  return page(rows, f.limit);
}

/** A new initialization run replaces a failed one: the project is `creating` again, following that job. Conditional on `failed`. */
export const reinitializeStatement = (db: Db, id: string, jobId: string, nowMs: number) =>
  db
    .update(projects)
    .set({ status: "creating", initJobId: jobId, error: null, updatedAt: nowMs })
    .where(and(eq(projects.id, id), eq(projects.status, "failed")));

export async function deleteProjectRow(db: Db, id: string): Promise<void> {
  await db.delete(projects).where(eq(projects.id, id));
}
