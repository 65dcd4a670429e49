CREATE TABLE `schedules` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`status` text DEFAULT 'active' NOT NULL,
	`cron` text,
	`timezone` text DEFAULT 'UTC' NOT NULL,
	`every_seconds` integer,
	`anchor_at` integer NOT NULL,
	`target` text NOT NULL,
	`overlap` text NOT NULL,
	`catch_up` text NOT NULL,
	`metadata` text DEFAULT '{}' NOT NULL,
	`run_count` integer DEFAULT 0 NOT NULL,
	`skipped_count` integer DEFAULT 0 NOT NULL,
	`last_run_at` integer,
	`next_run_at` integer,
	`last_job_id` text,
	`last_skip` text,
	`idempotency_key` text,
	`idempotency_hash` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL
);
--> statement-breakpoint
CREATE UNIQUE INDEX `schedules_idempotency_idx` ON `schedules` (`idempotency_key`);--> statement-breakpoint
CREATE INDEX `schedules_created_idx` ON `schedules` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `schedules_next_run_idx` ON `schedules` (`status`,`next_run_at`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `schedule_id` text;--> statement-breakpoint
ALTER TABLE `jobs` ADD `scheduled_for` integer;--> statement-breakpoint
CREATE INDEX `jobs_schedule_idx` ON `jobs` (`schedule_id`,`status`);