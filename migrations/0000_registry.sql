CREATE TABLE `aliases` (
	`model_name` text NOT NULL,
	`alias` text NOT NULL,
	`version` text NOT NULL,
	`updated_at` text NOT NULL,
	`updated_by` text NOT NULL,
	PRIMARY KEY(`model_name`, `alias`),
	FOREIGN KEY (`model_name`) REFERENCES `models`(`name`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE TABLE `audit_log` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`at` text NOT NULL,
	`actor` text NOT NULL,
	`action` text NOT NULL,
	`model_name` text NOT NULL,
	`version` text,
	`reason` text,
	`details` text
);
--> statement-breakpoint
CREATE INDEX `audit_log_model` ON `audit_log` (`model_name`,`id`);--> statement-breakpoint
CREATE TABLE `model_versions` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`model_name` text NOT NULL,
	`version` text NOT NULL,
	`major` integer NOT NULL,
	`minor` integer NOT NULL,
	`patch` integer NOT NULL,
	`task` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`environment` text NOT NULL,
	`status` text NOT NULL,
	`artifact_key` text NOT NULL,
	`sha256` text NOT NULL,
	`size_bytes` integer NOT NULL,
	`ir_version` integer NOT NULL,
	`opsets` text NOT NULL,
	`metrics` text NOT NULL,
	`feature_schema` text NOT NULL,
	`reference` text,
	`created_at` text NOT NULL,
	`created_by` text NOT NULL,
	FOREIGN KEY (`model_name`) REFERENCES `models`(`name`) ON UPDATE no action ON DELETE no action
);
--> statement-breakpoint
CREATE UNIQUE INDEX `model_versions_name_version` ON `model_versions` (`model_name`,`version`);--> statement-breakpoint
CREATE INDEX `model_versions_sha` ON `model_versions` (`sha256`);--> statement-breakpoint
CREATE TABLE `models` (
	`name` text PRIMARY KEY NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`created_at` text DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')) NOT NULL,
	`created_by` text NOT NULL
);
