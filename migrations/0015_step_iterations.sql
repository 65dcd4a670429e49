ALTER TABLE `tasks` ADD `iteration` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `tasks` ADD `item_index` integer;