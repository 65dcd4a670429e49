CREATE TABLE `artifacts` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`content_type` text NOT NULL,
	`kind` text NOT NULL,
	`status` text NOT NULL,
	`size` integer,
	`sha256` text,
	`r2_key` text NOT NULL,
	`job_id` text,
	`task_id` text,
	`project_id` text,
	`uploaded_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`upload_expires_at` integer
);
--> statement-breakpoint
CREATE INDEX `artifacts_created_idx` ON `artifacts` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `artifacts_job_idx` ON `artifacts` (`job_id`,`created_at`);--> statement-breakpoint
CREATE INDEX `artifacts_task_idx` ON `artifacts` (`task_id`);--> statement-breakpoint
CREATE INDEX `artifacts_project_idx` ON `artifacts` (`project_id`);--> statement-breakpoint
CREATE INDEX `artifacts_pending_idx` ON `artifacts` (`status`,`upload_expires_at`);--> statement-breakpoint
ALTER TABLE `jobs` ADD `input_artifact_ids` text DEFAULT '[]' NOT NULL;--> statement-breakpoint
ALTER TABLE `tasks` ADD `input_artifacts` text;