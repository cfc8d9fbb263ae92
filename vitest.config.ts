/**
 * Tests run inside workerd (@cloudflare/vitest-plugin) against local D1, R2, KV, Durable Objects and
 * Queues configured from wrangler.toml. Two test-only bindings are added:
 *  - TEST_MIGRATIONS: the SQL in migrations/, applied by test/support/setup.ts;
 *  - TEST_FILES: a service binding, running in Node, that serves repository files (models/,
 *    test/fixtures/, data/) to tests, since workerd has no file system.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";

const root = path.dirname(new URL(import.meta.url).pathname);
const SERVED = ["models/", "test/fixtures/", "data/"];

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
          },
          serviceBindings: { TEST_FILES: serveRepoFile },
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
