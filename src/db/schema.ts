/**
 * D1 schema (drizzle). Times are integer milliseconds since the epoch; the API
 * renders them as ISO-8601. `migrations/` holds the SQL generated from this file
 * (`npm run db:generate`).
 */
import { sql } from "drizzle-orm";
import { index, integer, primaryKey, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { ARTIFACT_KINDS, ARTIFACT_STATUSES } from "../core/artifact";
import { DEPLOYMENT_STAGES, DEPLOYMENT_STATUSES } from "../core/deployment-machine";
import { JOB_STATUSES } from "../core/job";
import { PROJECT_STATUSES } from "../core/project";
import { CATCH_UP_POLICIES, OVERLAP_POLICIES } from "../core/recurrence";
import { TASK_STATUSES } from "../core/task-machine";
import { type StepRules, WORKFLOW_STATUSES } from "../core/workflow";

const TOKEN_KINDS = ["admin", "viewer", "bot", "metrics"] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];
const LOG_LEVELS = ["info", "warn", "error"] as const;

export const bots = sqliteTable(
  "bots",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    capabilities: text("capabilities", { mode: "json" }).$type<string[]>().notNull().default(sql`'[]'`),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    /** 1 while the bot's Durable Object holds an open WebSocket (written on connect/close only). */
    connected: integer("connected", { mode: "boolean" }).notNull().default(false),
    /** Manual hold from `POST /bots/{id}/busy`, released by `/available`. */
    held: integer("held", { mode: "boolean" }).notNull().default(false),
    currentTaskId: text("current_task_id"),
    lastHeartbeatAt: integer("last_heartbeat_at"),
    connectedAt: integer("connected_at"),
    disconnectedAt: integer("disconnected_at"),
    /** Least recently assigned idle bot is offered work first (fairness). */
    lastAssignedAt: integer("last_assigned_at").notNull().default(0),
    /** Attempts this bot finished: completed, and failed (an error, a timeout, its loss); cancelled ones count in neither. */
    tasksCompleted: integer("tasks_completed").notNull().default(0),
    tasksFailed: integer("tasks_failed").notNull().default(0),
    /** 0–1 from the bot's recent attempts and reconnects (core/health.ts), written by its object when it moves. */
    healthScore: real("health_score").notNull().default(1),
    /** Set while the bot is quarantined: dispatch offers it nothing until it recovers or an admin clears it. */
    quarantinedAt: integer("quarantined_at"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    // Idle bots in the order dispatch takes them (healthierFirst, then least recently used): a create
    // or a wake-up walks it and stops at the first bot that can run the task, instead of reading every
    // idle bot and sorting them.
    index("bots_dispatch_idx").on(
      t.connected,
      t.held,
      t.currentTaskId,
      t.quarantinedAt,
      sql`CAST(health_score * 10 AS INTEGER) DESC`,
      t.lastAssignedAt,
      t.id,
    ),
    // Who holds a task (a create's claim reads its bot back by it): a seek, not a walk of every bot.
    index("bots_current_task_idx").on(t.currentTaskId),
    index("bots_created_idx").on(t.createdAt, t.id),
  ],
);

/**
 * Where dispatch finds an idle bot that can run a capability: a row per (bot, capability), kept by
 * triggers on `bots` (migrations/0019_bot_dispatch_triggers.sql: on insert, on every change to what
 * decides idleness or order, on delete), never written by the code. A create for a capability seeks
 * its first idle bot here in dispatch order (healthier, then least recently used), instead of walking
 * the idle bots of every capability in that order until one can run it: a mixed fleet whose idle bots
 * mostly serve other capabilities would otherwise make every create read past all of them.
 */
export const botDispatch = sqliteTable(
  "bot_dispatch",
  {
    botId: text("bot_id").notNull(),
    capability: text("capability").notNull(),
    /** The bot may be given a task now: connected, not held, holds none, not quarantined. */
    idle: integer("idle", { mode: "boolean" }).notNull(),
    /** Connected and not held, busy or not (`waiting_for`: is there any bot for this capability at all?). */
    available: integer("available", { mode: "boolean" }).notNull(),
    quarantined: integer("quarantined", { mode: "boolean" }).notNull(),
    /** `CAST(health_score * 10 AS INTEGER)`, the order's first key (as `healthierFirst`). */
    tier: integer("tier").notNull(),
    lastAssignedAt: integer("last_assigned_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.botId, t.capability] }),
    index("bot_dispatch_order_idx").on(t.capability, t.idle, sql`tier DESC`, t.lastAssignedAt, t.botId),
    index("bot_dispatch_available_idx").on(t.capability, t.available, t.quarantined),
  ],
);

export const workflows = sqliteTable(
  "workflows",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    description: text("description"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    status: text("status", { enum: WORKFLOW_STATUSES }).notNull().default("pending"),
    idempotencyKey: text("idempotency_key"),
    /** SHA-256 of the create request the key was first used with: the same key with another body is a conflict. */
    idempotencyHash: text("idempotency_hash"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
  },
  (t) => [uniqueIndex("workflows_idempotency_idx").on(t.idempotencyKey), index("workflows_created_idx").on(t.createdAt, t.id)],
);

export const tasks = sqliteTable(
  "tasks",
  {
    id: text("id").primaryKey(),
    payload: text("payload", { mode: "json" }).notNull(),
    capability: text("capability"),
    priority: integer("priority").notNull().default(0),
    timeoutSeconds: integer("timeout_seconds").notNull().default(300),
    maxAttempts: integer("max_attempts").notNull().default(3),
    attempts: integer("attempts").notNull().default(0),
    status: text("status", { enum: TASK_STATUSES }).notNull().default("pending"),
    botId: text("bot_id"),
    /** Who held a re-queued task: its late result is still accepted until another bot takes it. */
    previousBotId: text("previous_bot_id"),
    workflowId: text("workflow_id"),
    jobId: text("job_id"),
    stepIndex: integer("step_index"),
    /** A step's run: 0 first, one more per loop (`repeat_until`, a `goto` back); each run is its own row. */
    iteration: integer("iteration").notNull().default(0),
    /** A `for_each` step's item this row runs (null: not fanned out). */
    itemIndex: integer("item_index"),
    /** 0 for a workflow step not yet released; only ready tasks are dispatched. */
    ready: integer("ready", { mode: "boolean" }).notNull().default(true),
    /** Earliest dispatch time (retry backoff). */
    runAfter: integer("run_after").notNull().default(0),
    result: text("result", { mode: "json" }),
    error: text("error"),
    errorCode: text("error_code"),
    progress: integer("progress"),
    progressMessage: text("progress_message"),
    /** The job's input artifacts, as the bot is told of them (with short-lived download URLs signed at assignment). */
    inputArtifacts: text("input_artifacts", { mode: "json" }).$type<InputArtifact[]>(),
    /** A workflow step's rules (`when`, `on_failure`); a job's copy of the step carries them too. */
    stepRules: text("step_rules", { mode: "json" }).$type<StepRules>(),
    idempotencyKey: text("idempotency_key"),
    /** SHA-256 of the create request the key was first used with: the same key with another body is a conflict. */
    idempotencyHash: text("idempotency_hash"),
    /** Optimistic concurrency: every write is `WHERE version = <read version>`. */
    version: integer("version").notNull().default(0),
    /**
     * Unique id of the last guarded write. Follow-up statements in the same batch
     * check it (not the version, which a competing writer may also have reached).
     */
    writeId: text("write_id"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    assignedAt: integer("assigned_at"),
    startedAt: integer("started_at"),
    completedAt: integer("completed_at"),
    failedAt: integer("failed_at"),
    cancelledAt: integer("cancelled_at"),
  },
  (t) => [
    uniqueIndex("tasks_idempotency_idx").on(t.idempotencyKey),
    index("tasks_dispatch_idx").on(t.status, t.ready, t.priority, t.createdAt),
    // A bot's tasks, newest first (GET /tasks?bot_id=): in the order the list reads them, and untouched
    // by a task's status changes (only a claim, which sets bot_id, moves its entry).
    index("tasks_bot_idx").on(t.botId, t.createdAt, t.id),
    index("tasks_workflow_idx").on(t.workflowId, t.stepIndex),
    index("tasks_created_idx").on(t.createdAt, t.id),
    index("tasks_job_idx").on(t.jobId, t.stepIndex),
    // Finished tasks by when (metrics' per-minute counts): only rows that have the time are in them, so a
    // create writes neither and a completion adds one entry instead of moving its null one.
    index("tasks_completed_idx").on(t.completedAt).where(sql`completed_at IS NOT NULL`),
    index("tasks_failed_idx").on(t.failedAt).where(sql`failed_at IS NOT NULL`),
    // Running tasks per capability (a concurrency limit counts them when it dispatches). Only held tasks
    // are in it: a claim adds the entry, the result removes it, and neither a create nor a finished task writes it.
    index("tasks_capability_idx").on(t.capability, t.status).where(sql`status IN ('assigned', 'in_progress')`),
    // A claim finds the task it took by the write id it stamped (claimNextStatements): without this
    // index each of those lookups scans the whole table, every finished task included.
    index("tasks_write_idx").on(t.writeId),
    // A claim's seek for a capability's best due task, in the order it wants them (bestDueTask). Only
    // pending tasks are in it (the claim's query says `status = 'pending'` literally, as a partial index
    // needs): the claim removes the entry, and the task's later writes never touch it.
    index("tasks_claim_idx").on(t.status, t.ready, t.capability, sql`priority DESC`, t.createdAt).where(sql`status = 'pending'`),
  ],
);

export const tokens = sqliteTable(
  "tokens",
  {
    id: text("id").primaryKey(),
    kind: text("kind", { enum: TOKEN_KINDS }).notNull(),
    name: text("name").notNull(),
    botId: text("bot_id"),
    /** SHA-256 of the token, hex. The token itself is shown once and never stored. */
    tokenHash: text("token_hash").notNull(),
    createdAt: integer("created_at").notNull(),
    revokedAt: integer("revoked_at"),
  },
  (t) => [uniqueIndex("tokens_hash_idx").on(t.tokenHash), index("tokens_bot_idx").on(t.botId)],
);

export const events = sqliteTable(
  "events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    entityType: text("entity_type").notNull(), // task | bot | workflow
    entityId: text("entity_id").notNull(),
    type: text("type").notNull(),
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("events_entity_idx").on(t.entityType, t.entityId, t.id)],
);

/**
 * Jobs (seed 003): one execution of a workflow (fresh tasks copied from its
 * steps) or of one task. Its tasks carry `job_id` and run in `step_index`
 * order; the job row is updated in the same guarded batch as each step's
 * transition, so it never disagrees with its tasks.
 */
export const jobs = sqliteTable(
  "jobs",
  {
    id: text("id").primaryKey(),
    /** `task`: one task; `workflow`: the steps of `workflow_id`. */
    kind: text("kind", { enum: ["task", "workflow"] }).notNull(),
    workflowId: text("workflow_id"),
    /** Set for a project's initialization run. */
    projectId: text("project_id"),
    status: text("status", { enum: JOB_STATUSES }).notNull().default("queued"),
    progress: integer("progress").notNull().default(0),
    stepCount: integer("step_count").notNull(),
    result: text("result", { mode: "json" }),
    error: text("error"),
    errorCode: text("error_code"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    inputArtifactIds: text("input_artifact_ids", { mode: "json" }).$type<string[]>().notNull().default(sql`'[]'`),
    idempotencyKey: text("idempotency_key"),
    idempotencyHash: text("idempotency_hash"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    /** When execution was asked for (at create, or by `POST /jobs/{id}/execute` for a job created with `execute: false`). */
    queuedAt: integer("queued_at"),
    startedAt: integer("started_at"),
    finishedAt: integer("finished_at"),
    /** Set for a schedule's run, with the due time it ran for (null for a manual trigger). */
    scheduleId: text("schedule_id"),
    scheduledFor: integer("scheduled_for"),
  },
  (t) => [
    uniqueIndex("jobs_idempotency_idx").on(t.idempotencyKey),
    index("jobs_schedule_idx").on(t.scheduleId, t.status),
    index("jobs_created_idx").on(t.createdAt, t.id),
    index("jobs_status_idx").on(t.status, t.createdAt),
    index("jobs_workflow_idx").on(t.workflowId, t.createdAt),
    index("jobs_finished_idx").on(t.finishedAt),
  ],
);

/** Projects (seed 000): a website project is initialized in the background by an OpenClaw run (a job). */
export const projects = sqliteTable(
  "projects",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    domain: text("domain").notNull(),
    description: text("description"),
    typeId: integer("type_id").notNull(),
    status: text("status", { enum: PROJECT_STATUSES }).notNull().default("creating"),
    /** The latest initialization run (a job). */
    initJobId: text("init_job_id"),
    /** Where the bot keeps the project: a slug of the domain under the bot's projects directory. */
    projectPath: text("project_path").notNull(),
    error: text("error"),
    idempotencyKey: text("idempotency_key"),
    idempotencyHash: text("idempotency_hash"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    uniqueIndex("projects_idempotency_idx").on(t.idempotencyKey),
    index("projects_created_idx").on(t.createdAt, t.id),
    index("projects_init_job_idx").on(t.initJobId),
  ],
);

/**
 * A copy of every event stream's log (DECISIONS: the stream's Durable Object is the only writer of
 * `seq`; D1 holds a copy for queries and cleanup). Written by each stream's object from its outbox,
 * about a second behind; watchers and `GET …/events` read the object itself.
 */
export const streamEvents = sqliteTable(
  "stream_events",
  {
    stream: text("stream").notNull(),
    seq: integer("seq").notNull(),
    type: text("type").notNull(),
    data: text("data", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.stream, t.seq] }), index("stream_events_created_idx").on(t.createdAt)],
);

/** Small named values the coordinator keeps between runs (the sweeper's cursor over connected bots). */
export const coordinatorState = sqliteTable("coordinator_state", {
  key: text("key").primaryKey(),
  value: text("value").notNull(),
});

export type JobRow = typeof jobs.$inferSelect;
export type ProjectRow = typeof projects.$inferSelect;

export type BotRow = typeof bots.$inferSelect;
export type TaskRow = typeof tasks.$inferSelect;
export type WorkflowRow = typeof workflows.$inferSelect;
export type TokenRow = typeof tokens.$inferSelect;

/**
 * Deployments (seed 002). The row is the durable state of the stage machine;
 * its Durable Object is the only writer while it runs and keeps nothing else
 * but its alarm. Intent columns (`*_name`, order id) are written *before* each
 * paid or external action so a resumed stage finds what it started.
 */
export const deployments = sqliteTable(
  "deployments",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    provider: text("provider").notNull(),
    region: text("region").notNull(),
    plan: text("plan").notNull(),
    status: text("status", { enum: DEPLOYMENT_STATUSES }).notNull().default("PENDING"),
    /** Last completed stage (seed 002's provisionStage). */
    stage: text("stage", { enum: DEPLOYMENT_STAGES }),
    error: text("error"),
    stageStartedAt: integer("stage_started_at"),
    lastProgressAt: integer("last_progress_at").notNull(),
    transientErrors: integer("transient_errors").notNull().default(0),
    sshPublicKey: text("ssh_public_key"),
    sshPrivateKeySealed: text("ssh_private_key_sealed"),
    sshUsername: text("ssh_username").notNull().default("root"),
    sshPort: integer("ssh_port").notNull().default(22),
    hostKeySha256: text("host_key_sha256"),
    openrouterKeyName: text("openrouter_key_name"),
    openrouterKeyHash: text("openrouter_key_hash"),
    openrouterKeySealed: text("openrouter_key_sealed"),
    planId: text("plan_id"),
    vpsName: text("vps_name"),
    vpsOrderId: text("vps_order_id"),
    vpsServiceId: text("vps_service_id"),
    vpsIp: text("vps_ip"),
    /** Intent: when the rebuild was about to be issued (a resumed stage looks for it at the provider before issuing another). */
    rebuildRequestedAt: integer("rebuild_requested_at"),
    rebuildActionId: text("rebuild_action_id"),
    botId: text("bot_id"),
    botTokenId: text("bot_token_id"),
    /** Bumped at every setup-script launch; the callback token is bound to it. */
    launchCount: integer("launch_count").notNull().default(0),
    idempotencyKey: text("idempotency_key"),
    /** SHA-256 of the create request the key was first used with: the same key with another body is a conflict. */
    idempotencyHash: text("idempotency_hash"),
    /** Unique id of the last write; the log lines of a write are inserted only if it is there. */
    writeId: text("write_id"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    finishedAt: integer("finished_at"),
  },
  (t) => [
    uniqueIndex("deployments_idempotency_idx").on(t.idempotencyKey),
    index("deployments_status_idx").on(t.status, t.updatedAt),
    index("deployments_created_idx").on(t.createdAt, t.id),
  ],
);

/** The deployment's step log (`GET /deployments/{id}/logs`). */
export const deploymentEvents = sqliteTable(
  "deployment_events",
  {
    id: integer("id").primaryKey({ autoIncrement: true }),
    deploymentId: text("deployment_id").notNull(),
    level: text("level", { enum: LOG_LEVELS }).notNull().default("info"),
    type: text("type").notNull(),
    stage: text("stage", { enum: DEPLOYMENT_STAGES }),
    message: text("message").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("deployment_events_idx").on(t.deploymentId, t.id)],
);

export type DeploymentRow = typeof deployments.$inferSelect;

/** What a bot is told of an input artifact (the URL is added, freshly signed, when the task is sent). */
export interface InputArtifact {
  id: string;
  name: string;
  content_type: string;
  size: number;
  sha256: string;
}

/** Files into and out of jobs: bytes in R2 under `r2Key`, this row for finding them. */
export const artifacts = sqliteTable(
  "artifacts",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    contentType: text("content_type").notNull(),
    kind: text("kind", { enum: ARTIFACT_KINDS }).notNull(),
    status: text("status", { enum: ARTIFACT_STATUSES }).notNull(),
    /** Bytes and hex SHA-256, known once stored. */
    size: integer("size"),
    sha256: text("sha256"),
    r2Key: text("r2_key").notNull(),
    jobId: text("job_id"),
    taskId: text("task_id"),
    projectId: text("project_id"),
    /** `admin`, or the bot that uploaded it. */
    uploadedBy: text("uploaded_by").notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    /** A pending upload's URL stops working then; retention removes what never arrived. */
    uploadExpiresAt: integer("upload_expires_at"),
  },
  (t) => [
    index("artifacts_created_idx").on(t.createdAt, t.id),
    index("artifacts_job_idx").on(t.jobId, t.createdAt),
    index("artifacts_task_idx").on(t.taskId),
    index("artifacts_project_idx").on(t.projectId),
    index("artifacts_pending_idx").on(t.status, t.uploadExpiresAt),
  ],
);
export type ArtifactRow = typeof artifacts.$inferSelect;

/** What a schedule runs: the fields of `POST /tasks`, or an execution of a workflow. */
export type ScheduleTarget =
  | {
      kind: "task";
      task: { payload: unknown; capability: string | null; timeoutSeconds: number; priority: number; maxAttempts: number };
    }
  | { kind: "workflow"; workflowId: string };

/** Scheduled tasks (seed 001's roadmap): each due time runs a job; a ScheduleRunner object holds the alarm. */
export const schedules = sqliteTable(
  "schedules",
  {
    id: text("id").primaryKey(),
    name: text("name").notNull(),
    status: text("status", { enum: ["active", "paused"] })
      .notNull()
      .default("active"),
    /** A 5-field cron pattern read in `timezone`, or null for a fixed interval. */
    cron: text("cron"),
    timezone: text("timezone").notNull().default("UTC"),
    everySeconds: integer("every_seconds"),
    /** Interval schedules count their due times from here. */
    anchorAt: integer("anchor_at").notNull(),
    target: text("target", { mode: "json" }).$type<ScheduleTarget>().notNull(),
    overlap: text("overlap", { enum: OVERLAP_POLICIES }).notNull(),
    catchUp: text("catch_up", { enum: CATCH_UP_POLICIES }).notNull(),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull().default(sql`'{}'`),
    runCount: integer("run_count").notNull().default(0),
    skippedCount: integer("skipped_count").notNull().default(0),
    lastRunAt: integer("last_run_at"),
    /** The due time the schedule's object is armed for (written by it; the sweeper re-arms one left far behind). */
    nextRunAt: integer("next_run_at"),
    lastJobId: text("last_job_id"),
    /** Why the last due time did not run (an overlap skip, a missed time, a deleted workflow); cleared by the next run. */
    lastSkip: text("last_skip"),
    idempotencyKey: text("idempotency_key"),
    idempotencyHash: text("idempotency_hash"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    uniqueIndex("schedules_idempotency_idx").on(t.idempotencyKey),
    index("schedules_created_idx").on(t.createdAt, t.id),
    index("schedules_next_run_idx").on(t.status, t.nextRunAt),
  ],
);
export type ScheduleRow = typeof schedules.$inferSelect;

/**
 * Rate and concurrency limits set by the API (`/rate-limits`): per token
 * (requests per second with a burst, tasks created per minute) and per
 * capability (tasks created per minute, tasks running at once). A null column
 * is no limit; variables give the tokens' defaults.
 */
export const rateLimits = sqliteTable(
  "rate_limits",
  {
    scope: text("scope", { enum: ["token", "capability"] }).notNull(),
    /** A token's id, or a capability's name. */
    subject: text("subject").notNull(),
    requestsPerSecond: real("requests_per_second"),
    burst: integer("burst"),
    tasksPerMinute: integer("tasks_per_minute"),
    maxRunning: integer("max_running"),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [primaryKey({ columns: [t.scope, t.subject] })],
);
export type RateLimitRow = typeof rateLimits.$inferSelect;
