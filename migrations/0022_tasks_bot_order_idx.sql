DROP INDEX `tasks_bot_idx`;--> statement-breakpoint
CREATE INDEX `tasks_bot_idx` ON `tasks` (`bot_id`,`created_at`,`id`);