ALTER TABLE `bots` ADD `tasks_completed` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `bots` ADD `tasks_failed` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
CREATE INDEX `tasks_completed_idx` ON `tasks` (`completed_at`);--> statement-breakpoint
CREATE INDEX `tasks_failed_idx` ON `tasks` (`failed_at`);