-- Feature serving (src/features/tables.ts): versioned feature definitions and offline bulk loads.
CREATE TABLE `feature_definitions` (
	`group_name` text NOT NULL,
	`name` text NOT NULL,
	`version` integer NOT NULL,
	`kind` text NOT NULL,
	`dtype` text NOT NULL,
	`spec` text NOT NULL,
	`ttl_seconds` integer NOT NULL,
	`fallback` text NOT NULL,
	`description` text DEFAULT '' NOT NULL,
	`status` text NOT NULL,
	`created_at` text NOT NULL,
	`created_by` text NOT NULL,
	`retired_at` text,
	PRIMARY KEY(`group_name`, `name`, `version`)
);
--> statement-breakpoint
CREATE TABLE `feature_loads` (
	`id` text PRIMARY KEY NOT NULL,
	`group_name` text NOT NULL,
	`format` text NOT NULL,
	`source_key` text NOT NULL,
	`idempotency_key` text NOT NULL,
	`entity_column` text NOT NULL,
	`time_column` text,
	`columns` text,
	`status` text NOT NULL,
	`total_bytes` integer NOT NULL,
	`next_offset` integer NOT NULL,
	`rows_seen` integer DEFAULT 0 NOT NULL,
	`rows_loaded` integer DEFAULT 0 NOT NULL,
	`rows_rejected` integer DEFAULT 0 NOT NULL,
	`max_rejected` integer NOT NULL,
	`rejected` text DEFAULT '[]' NOT NULL,
	`lease_until` integer DEFAULT 0 NOT NULL,
	`error` text,
	`created_at` text NOT NULL,
	`created_by` text NOT NULL,
	`finished_at` text
);
--> statement-breakpoint
CREATE INDEX `feature_loads_group` ON `feature_loads` (`group_name`, `created_at`);--> statement-breakpoint
CREATE INDEX `feature_loads_idempotency` ON `feature_loads` (`idempotency_key`);
