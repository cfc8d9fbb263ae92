-- Batch scoring jobs (src/batch/tables.ts). Hand-written: the trigger keeps a job's counters in step
-- with its finished parts inside the insert that records a part, so redelivered chunks (whose
-- INSERT ... ON CONFLICT DO NOTHING inserts nothing) never count twice.
CREATE TABLE `batch_jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`state` text NOT NULL,
	`model_name` text NOT NULL,
	`version` text NOT NULL,
	`alias` text,
	`input_key` text NOT NULL,
	`input_format` text NOT NULL,
	`input_bytes` integer NOT NULL,
	`input_etag` text NOT NULL,
	`output_key` text NOT NULL,
	`output_format` text NOT NULL,
	`chunk_rows` integer NOT NULL,
	`columns` text,
	`rows_total` integer,
	`parts_total` integer,
	`parts_done` integer DEFAULT 0 NOT NULL,
	`rows_done` integer DEFAULT 0 NOT NULL,
	`rows_failed` integer DEFAULT 0 NOT NULL,
	`output_bytes` integer,
	`errors_key` text,
	`assemblies` integer DEFAULT 0 NOT NULL,
	`assembler` text,
	`assembly_until` integer,
	`error` text,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`started_at` integer,
	`finished_at` integer
);
--> statement-breakpoint
CREATE INDEX `batch_jobs_created` ON `batch_jobs` (`created_at`);
--> statement-breakpoint
CREATE INDEX `batch_jobs_model_version` ON `batch_jobs` (`model_name`,`version`);
--> statement-breakpoint
CREATE TABLE `batch_parts` (
	`job_id` text NOT NULL,
	`part` integer NOT NULL,
	`first_row` integer NOT NULL,
	`rows` integer NOT NULL,
	`errors` integer NOT NULL,
	`bytes` integer NOT NULL,
	`error_bytes` integer NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `part`)
);
--> statement-breakpoint
CREATE TABLE `batch_failures` (
	`job_id` text NOT NULL,
	`part` integer NOT NULL,
	`attempts` integer NOT NULL,
	`error` text NOT NULL,
	`at` integer NOT NULL,
	PRIMARY KEY(`job_id`, `part`)
);
--> statement-breakpoint
CREATE TRIGGER `batch_parts_count` AFTER INSERT ON `batch_parts`
BEGIN
	UPDATE `batch_jobs`
	SET `parts_done` = `parts_done` + 1,
	    `rows_done` = `rows_done` + NEW.`rows`,
	    `rows_failed` = `rows_failed` + NEW.`errors`
	WHERE `id` = NEW.`job_id`;
END;
