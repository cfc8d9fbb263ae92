CREATE TABLE `deployment_events` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`deployment_id` text NOT NULL,
	`revision` integer NOT NULL,
	`at` text NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`from_state` text,
	`to_state` text NOT NULL,
	`reason` text,
	`details` text,
	FOREIGN KEY (`deployment_id`) REFERENCES `deployments`(`id`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deployment_events_revision` ON `deployment_events` (`deployment_id`,`revision`);--> statement-breakpoint
CREATE TABLE `deployments` (
	`id` text PRIMARY KEY NOT NULL,
	`model_name` text NOT NULL,
	`strategy` text NOT NULL,
	`state` text NOT NULL,
	`baseline_version` text,
	`variants` text NOT NULL,
	`config` text NOT NULL,
	`salt` text NOT NULL,
	`validation_status` text,
	`validation` text,
	`revision` integer NOT NULL,
	`step_started_at` integer NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`created_at` text NOT NULL,
	`created_by` text NOT NULL,
	`updated_at` text NOT NULL,
	`updated_by` text NOT NULL
);
--> statement-breakpoint
CREATE INDEX `deployments_model` ON `deployments` (`model_name`,`created_at`);--> statement-breakpoint
CREATE UNIQUE INDEX `deployments_one_open_per_model` ON `deployments` (`model_name`) WHERE state IN ('validating', 'active', 'promoting', 'paused');