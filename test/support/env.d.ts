/** Test-only bindings added in vitest.config.ts. */
declare namespace Cloudflare {
  interface Env {
    TEST_MIGRATIONS: import("cloudflare:test").D1Migration[];
    TEST_FILES: Fetcher;
    TEST_TIGHT_LIMITER: RateLimit;
    TEST_WEBHOOK_SINK: Fetcher;
    TEST_PROMTOOL: Fetcher;
    TEST_BROWSER: Fetcher;
    TEST_TRAINER: Fetcher;
  }
}
