CREATE TABLE `rate_limits` (
	`scope` text NOT NULL,
	`subject` text NOT NULL,
	`requests_per_second` real,
	`burst` integer,
	`tasks_per_minute` integer,
	`max_running` integer,
	`updated_at` integer NOT NULL,
	PRIMARY KEY(`scope`, `subject`)
);
--> statement-breakpoint
CREATE INDEX `tasks_capability_idx` ON `tasks` (`capability`,`status`);