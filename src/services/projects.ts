/**
 * Projects (seed 000): created at once (`creating` for a website, `ready` for
 * the other types); a website is initialized in the background by a job — one
 * task for a bot with the `openclaw` capability, which runs
 * `openclaw run <project dir> --prompt <prompt>`. The job's end decides the
 * project's status in the same batch (task-writes.ts); the project's stream
 * says so to its watchers.
 */
import { initPrompt, projectSlug, projectType } from "../core/project";
import { timeOrderedId } from "../crypto/ids";
import { getProject, getProjectByIdempotencyKey, insertProject, insertProjectStatement, reinitializeStatement } from "../db/projects";
import type { ProjectRow } from "../db/schema";
import { AppError, loadOr404 } from "../errors";
import type { Ctx } from "./context";
import { createOnce, keyedRow } from "./create-once";
import { announceProject } from "./job-events";
import { insertNewJob, type JobSpec } from "./jobs";

/** The capability a bot needs to initialize projects. */
export const OPENCLAW_CAPABILITY = "openclaw";
/** The coordinator's deadline for a run is the bot's own timeout plus this, so the bot reports first (with stderr). */
const DEADLINE_SLACK_S = 30;

export interface ProjectCreate {
  name: string;
  domain: string;
  description: string | null;
  typeId: number;
}

export const loadProject = (ctx: Ctx, id: string) => loadOr404("project", id, getProject(ctx.db, id));

/** The initialization run of a website project. */
function initJob(ctx: Ctx, p: ProjectCreate & { id: string; projectPath: string }): JobSpec {
  const prompt = initPrompt(ctx.config.projectInitPrompt, p);
  return {
    kind: "task",
    workflowId: null,
    projectId: p.id,
    execute: true,
    metadata: { project_id: p.id, purpose: "project initialization" },
    steps: [
      {
        payload: {
          handler: "openclaw",
          project_id: p.id,
          project_dir: p.projectPath,
          prompt,
          timeout_seconds: ctx.config.projectInitTimeoutS,
        },
        capability: OPENCLAW_CAPABILITY,
        timeoutSeconds: ctx.config.projectInitTimeoutS + DEADLINE_SLACK_S,
        priority: 0,
        // A failed or timed-out run makes the project `failed` with its reason; POST /initialize runs it again.
        maxAttempts: 1,
      },
    ],
  };
}

export async function createProject(ctx: Ctx, input: ProjectCreate, key: string | undefined, request: unknown) {
  return createOnce(ctx, {
    kind: "project",
    key,
    request,
    find: async (k) => keyedRow(await getProjectByIdempotencyKey(ctx.db, k)),
    insert: async (requestHash): Promise<ProjectRow> => {
      const type = projectType(input.typeId);
      if (!type) throw new AppError("validation_failed", `unknown typeId ${input.typeId}`, { field: "typeId" });
      const nowMs = ctx.now();
      const row: ProjectRow = {
        id: timeOrderedId(),
        ...input,
        status: type.initialized ? "creating" : "ready",
        initJobId: null,
        projectPath: projectSlug(input.domain),
        error: null,
        idempotencyKey: key ?? null,
        idempotencyHash: requestHash,
        createdAt: nowMs,
        updatedAt: nowMs,
      };
      if (!type.initialized) {
        await insertProject(ctx.db, row);
        await announceProject(ctx, row);
      } else {
        // The project and its initialization job in one batch: there is never a `creating` project without its run.
        await insertNewJob(
          ctx,
          initJob(ctx, row),
          { key: null, hash: null },
          {
            extra: (jobId) => {
              row.initJobId = jobId;
              return [insertProjectStatement(ctx.db, row)];
            },
            afterInsert: () => announceProject(ctx, row),
          },
        );
      }
      ctx.log.info("project created", { project_id: row.id, type: type.name, status: row.status, job_id: row.initJobId });
      return row;
    },
  });
}

/** `POST /projects/{id}/initialize`: runs a failed project's initialization again (409 unless it failed). */
export async function reinitializeProject(ctx: Ctx, id: string): Promise<ProjectRow> {
  const project = await loadProject(ctx, id);
  if (project.status !== "failed" || !projectType(project.typeId)?.initialized) {
    throw new AppError("invalid_transition", `only a failed website project is initialized again (this one is ${project.status})`, {
      project_id: id,
      status: project.status,
    });
  }
  const after = { ...project, status: "creating" as const, error: null, updatedAt: ctx.now() };
  await insertNewJob(
    ctx,
    initJob(ctx, project),
    { key: null, hash: null },
    {
      extra: (jobId) => {
        after.initJobId = jobId;
        return [reinitializeStatement(ctx.db, id, jobId, after.updatedAt)];
      },
      afterInsert: () => announceProject(ctx, after),
    },
  );
  ctx.log.info("project initialization restarted", { project_id: id, job_id: after.initJobId });
  return after;
}
