CREATE TABLE `deployment_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`deployment_id` text NOT NULL,
	`level` text DEFAULT 'info' NOT NULL,
	`type` text NOT NULL,
	`stage` text,
	`message` text NOT NULL,
	`created_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `deployment_events_idx` ON `deployment_events` (`deployment_id`,`id`);--> statement-breakpoint
CREATE TABLE `deployments` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`provider` text NOT NULL,
	`region` text NOT NULL,
	`plan` text NOT NULL,
	`status` text DEFAULT 'PENDING' NOT NULL,
	`stage` text,
	`error` text,
	`stage_started_at` integer,
	`last_progress_at` integer NOT NULL,
	`transient_errors` integer DEFAULT 0 NOT NULL,
	`ssh_public_key` text,
	`ssh_private_key_sealed` text,
	`ssh_username` text DEFAULT 'root' NOT NULL,
	`ssh_port` integer DEFAULT 22 NOT NULL,
	`host_key_sha256` text,
	`openrouter_key_name` text,
	`openrouter_key_hash` text,
	`openrouter_key_sealed` text,
	`plan_id` text,
	`vps_name` text,
	`vps_order_id` text,
	`vps_service_id` text,
	`vps_ip` text,
	`rebuild_action_id` text,
	`bot_id` text,
	`bot_token_id` text,
	`launch_count` integer DEFAULT 0 NOT NULL,
	`idempotency_key` text,
	`write_id` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`finished_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deployments_idempotency_idx` ON `deployments` (`idempotency_key`);--> statement-breakpoint
CREATE INDEX `deployments_status_idx` ON `deployments` (`status`,`updated_at`);--> statement-breakpoint
CREATE INDEX `deployments_created_idx` ON `deployments` (`created_at`,`id`);