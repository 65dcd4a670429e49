/**
 * The task lifecycle as a pure state machine (no I/O).
 *
 *   pending → assigned → in_progress → completed | failed | cancelled
 *
 * A failure with attempts left (timeout, lost bot, bot error) goes back to
 * `pending` with a backoff; `failed`, `completed` and `cancelled` are final.
 */
import { type BackoffPolicy, retryDelayMs } from "./backoff";

export const TASK_STATUSES = ["pending", "assigned", "in_progress", "completed", "failed", "cancelled"] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];

export const HELD_TASK_STATUSES: readonly TaskStatus[] = ["assigned", "in_progress"];

/** Why an attempt ended without success; recorded on the task and its attempt. */
export type FailureCode = "timeout" | "bot_lost" | "bot_error";

/** The fields of a task the machine reads. */
export interface TaskState {
  status: TaskStatus;
  botId: string | null;
  /** The bot that held a task now back in `pending` (re-queued, not yet given to another bot). */
  previousBotId: string | null;
  attempts: number;
  maxAttempts: number;
  startedAtMs: number | null;
}

export type TaskAction =
  | { kind: "assign"; botId: string }
  | { kind: "start" }
  /** `reporterBotId`: the bot that sent the result (absent when an operator completes the task). */
  | { kind: "complete"; result: unknown; reporterBotId?: string }
  | { kind: "fail"; code: FailureCode; error: string; retry: boolean }
  | { kind: "cancel"; reason: string }
  /** Given to a bot whose socket turned out to be gone before it was told: back to the queue, the attempt not counted. */
  | { kind: "unassign"; reason: string };

/** Column changes to apply, in domain terms (the db layer maps them to columns). */
export interface TaskPatch {
  status: TaskStatus;
  botId?: string | null;
  previousBotId?: string | null;
  attempts?: number;
  assignedAtMs?: number | null;
  startedAtMs?: number | null;
  completedAtMs?: number | null;
  failedAtMs?: number | null;
  cancelledAtMs?: number | null;
  runAfterMs?: number;
  result?: unknown;
  error?: string | null;
  errorCode?: string | null;
  progress?: number | null;
  progressMessage?: string | null;
}

export type TransitionEvent =
  | "task_assigned"
  | "task_started"
  | "task_completed"
  | "task_failed"
  | "task_retry_scheduled"
  | "task_cancelled"
  | "task_unassigned";

export interface Transition {
  patch: TaskPatch;
  /** Event types to record, in order (a completion of an `assigned` task records its start first). */
  events: TransitionEvent[];
  /** The bot that held the task before and must be freed, if any. */
  releasedBotId: string | null;
}

export type TransitionResult = { ok: true; transition: Transition } | { ok: false; code: "invalid_transition"; message: string };

const ALLOWED_FROM: Record<TaskAction["kind"], readonly TaskStatus[]> = {
  assign: ["pending"],
  start: ["assigned"],
  complete: HELD_TASK_STATUSES,
  fail: HELD_TASK_STATUSES,
  cancel: ["pending", "assigned", "in_progress"],
  unassign: ["assigned"],
};

/** Assigned or in progress: a bot holds it. */
export function isHeld(status: string): boolean {
  return (HELD_TASK_STATUSES as readonly string[]).includes(status);
}

/** Completed, failed or cancelled: nothing more happens to it. */
export function isFinalTaskStatus(status: TaskStatus): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

export function canApply(status: TaskStatus, action: TaskAction["kind"]): boolean {
  return ALLOWED_FROM[action].includes(status);
}

/**
 * A result that arrives after its task was re-queued (the bot finished while
 * its connection, or the coordinator, was down) is still the work done: it is
 * accepted from the bot that held the task, as long as no other bot has it.
 */
export function isLateCompletion(task: TaskState, action: TaskAction): boolean {
  return (
    action.kind === "complete" &&
    task.status === "pending" &&
    action.reporterBotId !== undefined &&
    task.previousBotId === action.reporterBotId
  );
}

/** May this bot report on this task? Only its holder may, or its last holder with a late result. */
export function botMayReport(task: TaskState, botId: string, action: TaskAction): boolean {
  return task.botId === botId || isLateCompletion(task, action);
}

/**
 * May this result be acknowledged before D1 has it (objects/kept-result.ts)? Only a success its
 * holder reports that takes a standalone task to `completed`: a step's result moves its job or
 * workflow, which is read by id too, and a failure decides a retry, so both are written first.
 */
export function resultMayBeWrittenBehind(
  task: TaskState,
  standalone: boolean,
  botId: string,
  action: TaskAction,
  nowMs: number,
  backoff: BackoffPolicy,
): boolean {
  if (!standalone || action.kind !== "complete" || task.botId !== botId) return false;
  const decided = transitionTask(task, action, nowMs, backoff);
  return decided.ok && decided.transition.patch.status === "completed";
}

export function transitionTask(
  task: TaskState,
  action: TaskAction,
  nowMs: number,
  backoff: BackoffPolicy,
  random: () => number = Math.random,
): TransitionResult {
  if (isLateCompletion(task, action)) {
    return ok(
      {
        status: "completed",
        botId: task.previousBotId,
        previousBotId: null,
        startedAtMs: task.startedAtMs ?? nowMs,
        completedAtMs: nowMs,
        result: (action as { result?: unknown }).result ?? null,
        progress: 100,
        error: null,
        errorCode: null,
      },
      ["task_completed"],
      null, // the bot was freed when the task was re-queued
    );
  }
  if (!canApply(task.status, action.kind)) {
    return {
      ok: false,
      code: "invalid_transition",
      message: `cannot ${action.kind} a task that is ${task.status} (allowed from: ${ALLOWED_FROM[action.kind].join(", ")})`,
    };
  }
  const releasedBotId = task.status === "pending" ? null : task.botId;
  switch (action.kind) {
    case "assign":
      return ok(
        {
          status: "assigned",
          botId: action.botId,
          previousBotId: null,
          assignedAtMs: nowMs,
          startedAtMs: null,
          attempts: task.attempts + 1,
          progress: null,
          progressMessage: null,
        },
        ["task_assigned"],
        null,
      );
    case "start":
      return ok({ status: "in_progress", startedAtMs: nowMs }, ["task_started"], null);
    case "complete": {
      // Seed 001's example bot completes straight from `assigned`: record the start too.
      const startedFirst = task.status === "assigned";
      return ok(
        {
          status: "completed",
          startedAtMs: task.startedAtMs ?? nowMs,
          completedAtMs: nowMs,
          result: action.result ?? null,
          progress: 100,
        },
        startedFirst ? ["task_started", "task_completed"] : ["task_completed"],
        releasedBotId,
      );
    }
    case "fail": {
      const attemptsLeft = task.attempts < task.maxAttempts;
      if (action.retry && attemptsLeft) {
        return ok(
          {
            status: "pending",
            botId: null,
            previousBotId: task.botId,
            assignedAtMs: null,
            startedAtMs: null,
            runAfterMs: nowMs + retryDelayMs(task.attempts, backoff, random),
            error: action.error,
            errorCode: action.code,
          },
          ["task_retry_scheduled"],
          releasedBotId,
        );
      }
      return ok({ status: "failed", failedAtMs: nowMs, error: action.error, errorCode: action.code }, ["task_failed"], releasedBotId);
    }
    case "unassign":
      return ok(
        { status: "pending", botId: null, previousBotId: null, assignedAtMs: null, attempts: Math.max(0, task.attempts - 1) },
        ["task_unassigned"],
        releasedBotId,
      );
    case "cancel":
      return ok(
        { status: "cancelled", cancelledAtMs: nowMs, error: action.reason, errorCode: "cancelled" },
        ["task_cancelled"],
        releasedBotId,
      );
  }
}

function ok(patch: TaskPatch, events: TransitionEvent[], releasedBotId: string | null): TransitionResult {
  return { ok: true, transition: { patch, events, releasedBotId } };
}

/** When a held task times out: measured from its start, or from assignment if the bot never sent `start`. */
export function taskDeadlineMs(task: { assignedAtMs: number | null; startedAtMs: number | null; timeoutSeconds: number }): number | null {
  const since = task.startedAtMs ?? task.assignedAtMs;
  return since === null ? null : since + task.timeoutSeconds * 1000;
}
