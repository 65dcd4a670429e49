CREATE INDEX `bots_current_task_idx` ON `bots` (`current_task_id`);--> statement-breakpoint
CREATE INDEX `tasks_write_idx` ON `tasks` (`write_id`);--> statement-breakpoint
CREATE INDEX `tasks_claim_idx` ON `tasks` (`status`,`ready`,`capability`,priority DESC,`created_at`);