/** Rows → API JSON (snake_case, ISO times), one place for every response shape. */
import { deriveBotStatus } from "../core/bot-status";
import type { TaskStatus } from "../core/task-machine";
import type { WorkflowStatus } from "../core/workflow";
import type { BotRow, TaskRow, WorkflowRow } from "./schema";

export const iso = (ms: number | null | undefined): string | null => (ms === null || ms === undefined ? null : new Date(ms).toISOString());

export function botJson(row: BotRow, nowMs: number, staleAfterMs: number) {
  return {
    id: row.id,
    name: row.name,
    capabilities: row.capabilities,
    status: deriveBotStatus(
      {
        connected: row.connected,
        held: row.held,
        currentTaskId: row.currentTaskId,
        lastHeartbeatAtMs: row.lastHeartbeatAt,
        disconnectedAtMs: row.disconnectedAt,
      },
      nowMs,
      staleAfterMs,
    ),
    metadata: row.metadata,
    connected: row.connected,
    held: row.held,
    current_task_id: row.currentTaskId,
    last_heartbeat_at: iso(row.lastHeartbeatAt),
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
  };
}
export type BotJson = ReturnType<typeof botJson>;

export type TaskWithWaiting = TaskRow & { waitingFor?: string | null };

export function taskJson(row: TaskWithWaiting) {
  return {
    id: row.id,
    status: row.status as TaskStatus,
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
    run_after: row.runAfter > 0 ? iso(row.runAfter) : null,
    idempotency_key: row.idempotencyKey,
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
    assigned_at: iso(row.assignedAt),
    started_at: iso(row.startedAt),
    completed_at: iso(row.completedAt),
    failed_at: iso(row.failedAt),
    cancelled_at: iso(row.cancelledAt),
  };
}
export type TaskJson = ReturnType<typeof taskJson>;

export function workflowJson(row: WorkflowRow, taskIds: string[]) {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    status: row.status as WorkflowStatus,
    metadata: row.metadata,
    task_ids: taskIds,
    created_at: iso(row.createdAt)!,
    updated_at: iso(row.updatedAt)!,
    started_at: iso(row.startedAt),
    finished_at: iso(row.finishedAt),
  };
}
