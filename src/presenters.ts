/**
 * Presentation: rows → API JSON (snake_case, ISO-8601 times). Every response
 * shape is built here, so routes, streams and pages show a resource one way.
 */
import { nextStage } from "./core/deployment-machine";
import { projectType } from "./core/project";
import type { StepRules } from "./core/workflow";
import { botStatusOf } from "./db/bots";
import type { ArtifactRow, BotRow, DeploymentRow, JobRow, ProjectRow, ScheduleRow, TokenRow, WorkflowRow } from "./db/schema";
import type { TaskWithWaiting } from "./db/tasks";

export const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());
/** For columns that are never null. */
const isoAt = (ms: number): string => new Date(ms).toISOString();

export function botJson(row: BotRow, nowMs: number, staleAfterMs: number) {
  return {
    id: row.id,
    name: row.name,
    capabilities: row.capabilities,
    status: botStatusOf(row, nowMs, staleAfterMs),
    metadata: row.metadata,
    connected: row.connected,
    held: row.held,
    current_task_id: row.currentTaskId,
    tasks_completed: row.tasksCompleted,
    tasks_failed: row.tasksFailed,
    success_rate: successRate(row.tasksCompleted, row.tasksFailed),
    health_score: row.healthScore,
    quarantined: row.quarantinedAt !== null,
    quarantined_at: iso(row.quarantinedAt),
    last_heartbeat_at: iso(row.lastHeartbeatAt),
    created_at: isoAt(row.createdAt),
    updated_at: isoAt(row.updatedAt),
  };
}

/** Completed over finished attempts, rounded to 3 places; null before the first. */
export function successRate(completed: number, failed: number): number | null {
  const finished = completed + failed;
  return finished === 0 ? null : Math.round((completed / finished) * 1000) / 1000;
}

/** A step's failure rule as the API writes it: fail, continue or `goto <n>`. */
const onFailureText = (rules: StepRules) => (rules.onFailure === "goto" ? `goto ${rules.gotoStep}` : (rules.onFailure ?? "fail"));

export function taskJson(row: TaskWithWaiting) {
  return {
    id: row.id,
    status: row.status,
    payload: row.payload,
    result: row.result ?? null,
    capability: row.capability,
    priority: row.priority,
    timeout_seconds: row.timeoutSeconds,
    max_attempts: row.maxAttempts,
    attempts: row.attempts,
    bot_id: row.botId,
    workflow_id: row.workflowId,
    job_id: row.jobId,
    step_index: row.stepIndex,
    error: row.error,
    error_code: row.errorCode,
    progress: row.progress,
    progress_message: row.progressMessage,
    waiting_for: row.status === "pending" ? (row.waitingFor ?? null) : null,
    when: row.stepRules?.when ?? null,
    on_failure: row.stepRules ? onFailureText(row.stepRules) : null,
    repeat_until: row.stepRules?.repeatUntil ?? null,
    max_iterations: row.stepRules?.maxIterations ?? null,
    for_each: row.stepRules?.forEach ?? null,
    parallelism: row.stepRules?.forEach ? (row.stepRules.parallelism ?? 1) : null,
    iteration: row.iteration,
    item_index: row.itemIndex,
    run_after: row.runAfter > 0 ? iso(row.runAfter) : null,
    idempotency_key: row.idempotencyKey,
    created_at: isoAt(row.createdAt),
    updated_at: isoAt(row.updatedAt),
    assigned_at: iso(row.assignedAt),
    started_at: iso(row.startedAt),
    completed_at: iso(row.completedAt),
    failed_at: iso(row.failedAt),
    cancelled_at: iso(row.cancelledAt),
  };
}

export function workflowJson(row: WorkflowRow, taskIds: string[]) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    status: row.status,
    metadata: row.metadata,
    task_ids: taskIds,
    created_at: isoAt(row.createdAt),
    updated_at: isoAt(row.updatedAt),
    started_at: iso(row.startedAt),
    finished_at: iso(row.finishedAt),
  };
}

export const deploymentStatusUrl = (id: string) => `/api/v1/deployments/${id}`;

/** `botOnline`: whether the deployment's bot holds a live socket (read for a whole page at once). */
export function deploymentJson(d: DeploymentRow, botOnline: boolean) {
  return {
    id: d.id,
    name: d.name,
    provider: d.provider,
    region: d.region,
    plan: d.plan,
    status: d.status,
    stage: d.stage,
    next_stage: d.status === "READY" ? null : nextStage(d.stage),
    error: d.error,
    vps: { order_id: d.vpsOrderId, service_id: d.vpsServiceId, ip: d.vpsIp, ssh_port: d.sshPort, host_key_sha256: d.hostKeySha256 },
    bot_id: d.botId,
    bot_online: botOnline,
    status_url: deploymentStatusUrl(d.id),
    websocket_url: `/api/v1/ws/deployments/${d.id}`,
    created_at: isoAt(d.createdAt),
    updated_at: isoAt(d.updatedAt),
    last_progress_at: isoAt(d.lastProgressAt),
    finished_at: iso(d.finishedAt),
  };
}

export function deploymentLogJson(e: {
  id: number;
  level: string;
  type: string;
  stage: string | null;
  message: string;
  createdAt: number;
}) {
  return { id: e.id, level: e.level, type: e.type, stage: e.stage, message: e.message, created_at: isoAt(e.createdAt) };
}

export function taskEventJson(e: { id: number; type: string; data: Record<string, unknown>; createdAt: number }) {
  return { id: e.id, type: e.type, data: e.data, created_at: isoAt(e.createdAt) };
}

export function tokenJson(t: Pick<TokenRow, "id" | "kind" | "name" | "botId" | "createdAt" | "revokedAt">) {
  return { id: t.id, kind: t.kind, name: t.name, bot_id: t.botId ?? null, created_at: isoAt(t.createdAt), revoked_at: iso(t.revokedAt) };
}

export function connectionJson(b: Pick<BotRow, "id" | "name" | "connectedAt">) {
  return { bot_id: b.id, name: b.name, connected_at: iso(b.connectedAt) };
}

export const jobStatusUrl = (id: string) => `/api/v1/jobs/${id}`;
export const jobWebsocketUrl = (id: string) => `/api/v1/ws/jobs/${id}`;

export function jobJson(j: JobRow) {
  return {
    id: j.id,
    kind: j.kind,
    workflow_id: j.workflowId,
    project_id: j.projectId,
    status: j.status,
    progress: j.progress,
    step_count: j.stepCount,
    result: j.result ?? null,
    error: j.error,
    error_code: j.errorCode,
    metadata: j.metadata,
    input_artifact_ids: j.inputArtifactIds,
    schedule_id: j.scheduleId,
    scheduled_for: iso(j.scheduledFor),
    status_url: jobStatusUrl(j.id),
    websocket_url: jobWebsocketUrl(j.id),
    created_at: isoAt(j.createdAt),
    updated_at: isoAt(j.updatedAt),
    queued_at: iso(j.queuedAt),
    started_at: iso(j.startedAt),
    finished_at: iso(j.finishedAt),
  };
}

export const projectStatusUrl = (id: string) => `/api/v1/projects/${id}/status`;

export function projectJson(p: ProjectRow) {
  return {
    id: p.id,
    name: p.name,
    domain: p.domain,
    description: p.description,
    typeId: p.typeId,
    type: projectType(p.typeId)?.name ?? "unknown",
    status: p.status,
    error: p.error,
    project_path: p.projectPath,
    init_job_id: p.initJobId,
    status_url: projectStatusUrl(p.id),
    websocket_url: `/api/v1/ws/projects/${p.id}`,
    created_at: isoAt(p.createdAt),
    updated_at: isoAt(p.updatedAt),
  };
}

/** Where an artifact's content is read (with a token, or signed for a bot). */
export const artifactContentPath = (id: string) => `/api/v1/artifacts/${id}/content`;

export function artifactJson(a: ArtifactRow) {
  return {
    id: a.id,
    name: a.name,
    content_type: a.contentType,
    kind: a.kind,
    status: a.status,
    size: a.size,
    sha256: a.sha256,
    job_id: a.jobId,
    task_id: a.taskId,
    project_id: a.projectId,
    uploaded_by: a.uploadedBy,
    content_url: artifactContentPath(a.id),
    created_at: isoAt(a.createdAt),
    updated_at: isoAt(a.updatedAt),
  };
}

/** An artifact as a job's result lists it. */
export const resultArtifactJson = (a: ArtifactRow) => ({
  id: a.id,
  name: a.name,
  content_type: a.contentType,
  kind: a.kind,
  size: a.size,
  sha256: a.sha256,
  task_id: a.taskId,
  download_url: artifactContentPath(a.id),
});

/** A schedule as the API shows it. */
export function scheduleJson(s: ScheduleRow) {
  const task = s.target.kind === "task" ? s.target.task : null;
  return {
    id: s.id,
    name: s.name,
    status: s.status,
    cron: s.cron,
    timezone: s.timezone,
    every_seconds: s.everySeconds,
    task: task && {
      payload: task.payload,
      capability: task.capability,
      priority: task.priority,
      timeout_seconds: task.timeoutSeconds,
      max_attempts: task.maxAttempts,
    },
    workflow_id: s.target.kind === "workflow" ? s.target.workflowId : null,
    overlap: s.overlap,
    catch_up: s.catchUp,
    metadata: s.metadata,
    next_run_at: s.status === "active" ? iso(s.nextRunAt) : null,
    run_count: s.runCount,
    skipped_count: s.skippedCount,
    last_run_at: iso(s.lastRunAt),
    last_job_id: s.lastJobId,
    last_skip: s.lastSkip,
    runs_url: `/api/v1/jobs?schedule_id=${s.id}`,
    created_at: isoAt(s.createdAt),
    updated_at: isoAt(s.updatedAt),
  };
}
