DROP INDEX `tasks_completed_idx`;--> statement-breakpoint
DROP INDEX `tasks_failed_idx`;--> statement-breakpoint
DROP INDEX `tasks_capability_idx`;--> statement-breakpoint
DROP INDEX `tasks_claim_idx`;--> statement-breakpoint
CREATE INDEX `tasks_completed_idx` ON `tasks` (`completed_at`) WHERE completed_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX `tasks_failed_idx` ON `tasks` (`failed_at`) WHERE failed_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX `tasks_capability_idx` ON `tasks` (`capability`,`status`) WHERE status IN ('assigned', 'in_progress');--> statement-breakpoint
CREATE INDEX `tasks_claim_idx` ON `tasks` (`status`,`ready`,`capability`,priority DESC,`created_at`) WHERE status = 'pending';