ALTER TABLE `deployments` ADD `idempotency_hash` text;--> statement-breakpoint
ALTER TABLE `tasks` ADD `idempotency_hash` text;--> statement-breakpoint
ALTER TABLE `workflows` ADD `idempotency_hash` text;