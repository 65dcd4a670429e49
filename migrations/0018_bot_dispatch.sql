CREATE TABLE `bot_dispatch` (
	`bot_id` text NOT NULL,
	`capability` text NOT NULL,
	`idle` integer NOT NULL,
	`available` integer NOT NULL,
	`quarantined` integer NOT NULL,
	`tier` integer NOT NULL,
	`last_assigned_at` integer NOT NULL,
	PRIMARY KEY(`bot_id`, `capability`)
);
--> statement-breakpoint
CREATE INDEX `bot_dispatch_order_idx` ON `bot_dispatch` (`capability`,`idle`,tier DESC,`last_assigned_at`,`bot_id`);--> statement-breakpoint
CREATE INDEX `bot_dispatch_available_idx` ON `bot_dispatch` (`capability`,`available`,`quarantined`);