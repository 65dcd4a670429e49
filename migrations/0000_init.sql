CREATE TABLE `bots` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`capabilities` text DEFAULT '[]' NOT NULL,
	`metadata` text DEFAULT '{}' NOT NULL,
	`connected` integer DEFAULT false NOT NULL,
	`held` integer DEFAULT false NOT NULL,
	`current_task_id` text,
	`last_heartbeat_at` integer,
	`connected_at` integer,
	`disconnected_at` integer,
	`last_assigned_at` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `bots_idle_idx` ON `bots` (`connected`,`held`,`current_task_id`,`last_assigned_at`);--> statement-breakpoint
CREATE INDEX `bots_created_idx` ON `bots` (`created_at`,`id`);--> statement-breakpoint
CREATE TABLE `events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`entity_type` text NOT NULL,
	`entity_id` text NOT NULL,
	`type` text NOT NULL,
	`data` text DEFAULT '{}' NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `events_entity_idx` ON `events` (`entity_type`,`entity_id`,`id`);--> statement-breakpoint
CREATE TABLE `tasks` (
	`id` text PRIMARY KEY NOT NULL,
	`payload` text NOT NULL,
	`capability` text,
	`priority` integer DEFAULT 0 NOT NULL,
	`timeout_seconds` integer DEFAULT 300 NOT NULL,
	`max_attempts` integer DEFAULT 3 NOT NULL,
	`attempts` integer DEFAULT 0 NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`bot_id` text,
	`workflow_id` text,
	`job_id` text,
	`step_index` integer,
	`ready` integer DEFAULT true NOT NULL,
	`run_after` integer DEFAULT 0 NOT NULL,
	`result` text,
	`error` text,
	`error_code` text,
	`progress` integer,
	`progress_message` text,
	`idempotency_key` text,
	`version` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`assigned_at` integer,
	`started_at` integer,
	`completed_at` integer,
	`failed_at` integer,
	`cancelled_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tasks_idempotency_idx` ON `tasks` (`idempotency_key`);--> statement-breakpoint
CREATE INDEX `tasks_dispatch_idx` ON `tasks` (`status`,`ready`,`priority`,`created_at`);--> statement-breakpoint
CREATE INDEX `tasks_bot_idx` ON `tasks` (`bot_id`,`status`);--> statement-breakpoint
CREATE INDEX `tasks_workflow_idx` ON `tasks` (`workflow_id`,`step_index`);--> statement-breakpoint
CREATE INDEX `tasks_created_idx` ON `tasks` (`created_at`,`id`);--> statement-breakpoint
CREATE TABLE `tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`name` text NOT NULL,
	`bot_id` text,
	`token_hash` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tokens_hash_idx` ON `tokens` (`token_hash`);--> statement-breakpoint
CREATE INDEX `tokens_bot_idx` ON `tokens` (`bot_id`);--> statement-breakpoint
CREATE TABLE `workflows` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`description` text,
	`metadata` text DEFAULT '{}' NOT NULL,
	`status` text DEFAULT 'pending' NOT NULL,
	`idempotency_key` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `workflows_idempotency_idx` ON `workflows` (`idempotency_key`);--> statement-breakpoint
CREATE INDEX `workflows_created_idx` ON `workflows` (`created_at`,`id`);