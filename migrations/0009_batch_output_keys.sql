-- One writer per batch output key (src/batch/tables.ts). A job owns its output key and the errors key
-- beside it (`<output key>.errors.ndjson`, errorsKeyOf in src/batch/keys.ts) from the moment it is
-- created, unless it failed or was cancelled: those serve nothing, so their keys can be used again.
-- POST /v1/batch looks the owner up first to name it in its 409; this trigger makes the rule hold when
-- two submissions race (D1 runs one statement at a time). A trigger rather than a unique index on
-- output_key: the errors key is derived from another row's output key, and jobs created before this
-- migration may already share a key (a unique index would refuse to build over them).
CREATE INDEX `batch_jobs_output_key` ON `batch_jobs` (`output_key`);
--> statement-breakpoint
CREATE TRIGGER `batch_jobs_output_key_owned` BEFORE INSERT ON `batch_jobs`
WHEN EXISTS (
	SELECT 1 FROM `batch_jobs`
	WHERE `state` NOT IN ('failed', 'cancelled')
	  AND `output_key` IN (
	      NEW.`output_key`,
	      NEW.`output_key` || '.errors.ndjson',
	      CASE WHEN substr(NEW.`output_key`, -14) = '.errors.ndjson' THEN substr(NEW.`output_key`, 1, length(NEW.`output_key`) - 14) END
	  )
)
BEGIN
	SELECT RAISE(ABORT, 'batch output key is owned by another job');
END;
