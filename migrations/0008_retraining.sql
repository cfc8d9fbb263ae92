-- Retraining (src/retraining/tables.ts): per-model configuration, triggers, jobs and their history.
CREATE TABLE `retraining_configs` (
	`model_name` text PRIMARY KEY NOT NULL,
	`trainer_url` text NOT NULL,
	`trainer_secret` text NOT NULL,
	`config` text NOT NULL,
	`updated_at` integer NOT NULL,
	`updated_by` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `retraining_triggers` (
	`id` text PRIMARY KEY NOT NULL,
	`model_name` text NOT NULL,
	`type` text NOT NULL,
	`config` text NOT NULL,
	`enabled` integer DEFAULT 1 NOT NULL,
	`last_fired_at` integer,
	`last_evaluation` text,
	`created_at` integer NOT NULL,
	`created_by` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `retraining_triggers_model` ON `retraining_triggers` (`model_name`);--> statement-breakpoint
CREATE TABLE `retraining_jobs` (
	`id` text PRIMARY KEY NOT NULL,
	`model_name` text NOT NULL,
	`trigger_id` text,
	`trigger_type` text NOT NULL,
	`reason` text NOT NULL,
	`state` text NOT NULL,
	`active` integer NOT NULL,
	`revision` integer NOT NULL,
	`champion_version` text,
	`candidate_version` text,
	`deployment_id` text,
	`metrics` text,
	`report` text,
	`export` text,
	`error` text,
	`created_by` text NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`promoted_at` integer,
	`watch_until` integer,
	`finished_at` integer
);
--> statement-breakpoint
CREATE INDEX `retraining_jobs_model` ON `retraining_jobs` (`model_name`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `retraining_jobs_one_active_per_model` ON `retraining_jobs` (`model_name`) WHERE active = 1;--> statement-breakpoint
CREATE TABLE `retraining_job_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`job_id` text NOT NULL,
	`revision` integer NOT NULL,
	`at` integer NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`from_state` text,
	`to_state` text NOT NULL,
	`details` text,
	FOREIGN KEY (`job_id`) REFERENCES `retraining_jobs`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `retraining_job_events_revision` ON `retraining_job_events` (`job_id`,`revision`);
