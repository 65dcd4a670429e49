CREATE TABLE `jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`kind` text NOT NULL,
	`workflow_id` text,
	`project_id` text,
	`status` text DEFAULT 'queued' NOT NULL,
	`progress` integer DEFAULT 0 NOT NULL,
	`step_count` integer NOT NULL,
	`result` text,
	`error` text,
	`error_code` text,
	`metadata` text DEFAULT '{}' NOT NULL,
	`idempotency_key` text,
	`idempotency_hash` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`queued_at` integer,
	`started_at` integer,
	`finished_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `jobs_idempotency_idx` ON `jobs` (`idempotency_key`);--> statement-breakpoint
CREATE INDEX `jobs_created_idx` ON `jobs` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `jobs_status_idx` ON `jobs` (`status`,`created_at`);--> statement-breakpoint
CREATE INDEX `jobs_workflow_idx` ON `jobs` (`workflow_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `jobs_finished_idx` ON `jobs` (`finished_at`);--> statement-breakpoint
CREATE TABLE `projects` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`domain` text NOT NULL,
	`description` text,
	`type_id` integer NOT NULL,
	`status` text DEFAULT 'creating' NOT NULL,
	`init_job_id` text,
	`project_path` text NOT NULL,
	`error` text,
	`idempotency_key` text,
	`idempotency_hash` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `projects_idempotency_idx` ON `projects` (`idempotency_key`);--> statement-breakpoint
CREATE INDEX `projects_created_idx` ON `projects` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `projects_init_job_idx` ON `projects` (`init_job_id`);--> statement-breakpoint
CREATE INDEX `tasks_job_idx` ON `tasks` (`job_id`,`step_index`);