-- A busy bot handing off from one task to the next (current_task_id and last_assigned_at change, it
-- stays busy) no longer rewrites its bot_dispatch rows: nothing dispatch reads of them changed. The
-- copy's last_assigned_at is the bot's while the bot is idle (dispatch orders idle bots by it) and is
-- refreshed whenever the bot becomes idle, because idleness is one of the values compared below.
DROP TRIGGER `bots_dispatch_update`;
--> statement-breakpoint
CREATE TRIGGER `bots_dispatch_update` AFTER UPDATE OF `connected`, `held`, `current_task_id`, `quarantined_at`, `health_score`, `last_assigned_at` ON `bots`
WHEN (NEW.`connected` = 1 AND NEW.`held` = 0 AND NEW.`current_task_id` IS NULL AND NEW.`quarantined_at` IS NULL)
       IS NOT (OLD.`connected` = 1 AND OLD.`held` = 0 AND OLD.`current_task_id` IS NULL AND OLD.`quarantined_at` IS NULL)
  OR (NEW.`connected` = 1 AND NEW.`held` = 0) IS NOT (OLD.`connected` = 1 AND OLD.`held` = 0)
  OR (NEW.`quarantined_at` IS NOT NULL) IS NOT (OLD.`quarantined_at` IS NOT NULL)
  OR CAST(NEW.`health_score` * 10 AS INTEGER) IS NOT CAST(OLD.`health_score` * 10 AS INTEGER)
  OR (NEW.`current_task_id` IS NULL AND NEW.`last_assigned_at` IS NOT OLD.`last_assigned_at`)
BEGIN
  UPDATE `bot_dispatch`
  SET `idle` = NEW.`connected` = 1 AND NEW.`held` = 0 AND NEW.`current_task_id` IS NULL AND NEW.`quarantined_at` IS NULL,
      `available` = NEW.`connected` = 1 AND NEW.`held` = 0,
      `quarantined` = NEW.`quarantined_at` IS NOT NULL,
      `tier` = CAST(NEW.`health_score` * 10 AS INTEGER),
      `last_assigned_at` = NEW.`last_assigned_at`
  WHERE `bot_id` = NEW.`id`;
END;
