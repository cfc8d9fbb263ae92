/**
 * Tests run inside workerd (@cloudflare/vitest-plugin) against local D1, R2, KV, Durable Objects and
 * Queues configured from wrangler.toml. Two test-only bindings are added:
 *  - TEST_MIGRATIONS: the SQL in migrations/, applied by test/support/setup.ts;
 *  - TEST_FILES: a service binding, running in Node, that serves repository files (models/,
 *    test/fixtures/, data/) to tests, since workerd has no file system.
 * Monitoring adds three test-only Node services (webhook sink, promtool, headless Chromium); see
 * test/support/node-services.ts.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { browser, promtool, webhookSink } from "./test/support/node-services";
import { trainerService } from "./test/support/trainer-service";

const root = path.dirname(new URL(import.meta.url).pathname);
const SERVED = ["models/", "test/fixtures/", "data/", "dashboards/"];

async function serveRepoFile(request: Request): Promise<Response> {
  const rel = decodeURIComponent(new URL(request.url).pathname).replace(/^\/+/, "");
  if (rel.includes("..") || !SERVED.some((prefix) => rel.startsWith(prefix))) {
    return new Response("not served", { status: 404 });
  }
  try {
    return new Response(await readFile(path.join(root, rel)));
  } catch {
    return new Response("not found", { status: 404 });
  }
}

export default defineConfig(async () => {
  const migrations = await readD1Migrations(path.join(root, "migrations"));
  return {
    plugins: [
      cloudflareTest({
        wrangler: { configPath: "./wrangler.toml" },
        miniflare: {
          bindings: {
            TEST_MIGRATIONS: migrations,
            ADMIN_TOKEN: "test-admin-token",
            API_KEYS: "test-key-1,test-key-2",
            // Monitoring batches leave isolates after 50 ms in tests (2 s in wrangler.toml).
            MONITORING_FLUSH_MS: "50",
            DEPLOYMENT_STATS_FLUSH_MS: "50",
            // Batch messages that fail are retried at once in tests (5 s doubling in production).
            BATCH_RETRY_DELAY_SECONDS: "0",
            // Retraining: dispatch retries without waiting; every archived record written at once.
            RETRAINING_DISPATCH_BACKOFF_SECONDS: "0",
            RETRAINING_ARCHIVE_FLUSH_ROWS: "1",
            // One JSON line per request is noise in test output (test/http/browser.test.ts turns it on).
            REQUEST_LOGS: "false",
          },
          // TEST_WEBHOOK_SINK / TEST_PROMTOOL / TEST_BROWSER: test-only Node services (test/support/node-services.ts).
          serviceBindings: { TEST_FILES: serveRepoFile, TEST_WEBHOOK_SINK: webhookSink, TEST_PROMTOOL: promtool, TEST_BROWSER: browser, TEST_TRAINER: trainerService },
          // A real rate-limit binding with a tiny budget, so tests can reach the limit.
          ratelimits: { TEST_TIGHT_LIMITER: { namespace_id: "9001", simple: { limit: 3, period: 60 } } },
        },
      }),
    ],
    test: {
      setupFiles: ["./test/support/setup.ts"],
      testTimeout: 60_000,
      hookTimeout: 60_000,
    },
  };
});
