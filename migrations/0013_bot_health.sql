ALTER TABLE `bots` ADD `health_score` real DEFAULT 1 NOT NULL;--> statement-breakpoint
ALTER TABLE `bots` ADD `quarantined_at` integer;