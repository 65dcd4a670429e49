-- bot_dispatch (0018) is kept by these triggers alone: a row per (bot, capability) with what dispatch
-- orders and filters by, changed in the same statement as the bot's row, so the two never disagree.
-- (A trigger cannot call another: the insert's body is written out again where capabilities change.)
CREATE TRIGGER `bots_dispatch_insert` AFTER INSERT ON `bots` BEGIN
  INSERT OR IGNORE INTO `bot_dispatch` (`bot_id`, `capability`, `idle`, `available`, `quarantined`, `tier`, `last_assigned_at`)
  SELECT NEW.`id`, `value`,
         NEW.`connected` = 1 AND NEW.`held` = 0 AND NEW.`current_task_id` IS NULL AND NEW.`quarantined_at` IS NULL,
         NEW.`connected` = 1 AND NEW.`held` = 0, NEW.`quarantined_at` IS NOT NULL,
         CAST(NEW.`health_score` * 10 AS INTEGER), NEW.`last_assigned_at`
  FROM json_each(NEW.`capabilities`);
END;
--> statement-breakpoint
CREATE TRIGGER `bots_dispatch_update` AFTER UPDATE OF `connected`, `held`, `current_task_id`, `quarantined_at`, `health_score`, `last_assigned_at` ON `bots` BEGIN
  UPDATE `bot_dispatch`
  SET `idle` = NEW.`connected` = 1 AND NEW.`held` = 0 AND NEW.`current_task_id` IS NULL AND NEW.`quarantined_at` IS NULL,
      `available` = NEW.`connected` = 1 AND NEW.`held` = 0,
      `quarantined` = NEW.`quarantined_at` IS NOT NULL,
      `tier` = CAST(NEW.`health_score` * 10 AS INTEGER),
      `last_assigned_at` = NEW.`last_assigned_at`
  WHERE `bot_id` = NEW.`id`;
END;
--> statement-breakpoint
CREATE TRIGGER `bots_dispatch_capabilities` AFTER UPDATE OF `capabilities` ON `bots` BEGIN
  DELETE FROM `bot_dispatch` WHERE `bot_id` = NEW.`id`;
  INSERT OR IGNORE INTO `bot_dispatch` (`bot_id`, `capability`, `idle`, `available`, `quarantined`, `tier`, `last_assigned_at`)
  SELECT NEW.`id`, `value`,
         NEW.`connected` = 1 AND NEW.`held` = 0 AND NEW.`current_task_id` IS NULL AND NEW.`quarantined_at` IS NULL,
         NEW.`connected` = 1 AND NEW.`held` = 0, NEW.`quarantined_at` IS NOT NULL,
         CAST(NEW.`health_score` * 10 AS INTEGER), NEW.`last_assigned_at`
  FROM json_each(NEW.`capabilities`);
END;
--> statement-breakpoint
CREATE TRIGGER `bots_dispatch_delete` AFTER DELETE ON `bots` BEGIN
  DELETE FROM `bot_dispatch` WHERE `bot_id` = OLD.`id`;
END;
--> statement-breakpoint
-- The bots registered before this migration.
INSERT OR IGNORE INTO `bot_dispatch` (`bot_id`, `capability`, `idle`, `available`, `quarantined`, `tier`, `last_assigned_at`)
SELECT `bots`.`id`, `c`.`value`,
       `bots`.`connected` = 1 AND `bots`.`held` = 0 AND `bots`.`current_task_id` IS NULL AND `bots`.`quarantined_at` IS NULL,
       `bots`.`connected` = 1 AND `bots`.`held` = 0, `bots`.`quarantined_at` IS NOT NULL,
       CAST(`bots`.`health_score` * 10 AS INTEGER), `bots`.`last_assigned_at`
FROM `bots`, json_each(`bots`.`capabilities`) AS `c`;
