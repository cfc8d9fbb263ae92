/**
 * `npm run reset`: returns local state to the demo. Deletes wrangler's local state (.wrangler/state:
 * D1, R2, KV, Durable Objects, Queues), applies the migrations again and, if a server answers on
 * PORT (default 8787), nothing else: stop `npm start` first, since a running server holds the
 * state open. The next `npm start` registers the demo models afresh. .dev.vars (the local
 * credentials) is kept.
 */
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { applyMigrations, ROOT } from "./lib/dev-server.ts";

const port = Number(process.env.PORT ?? 8787);
try {
  const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(1000) });
  if (res.ok) {
    console.error(`a server answers on port ${port}: stop npm start (Ctrl-C) before resetting its state`);
    process.exit(1);
  }
} catch {
  /* nothing listening: good */
}
const state = path.join(ROOT, ".wrangler", "state");
if (existsSync(state)) {
  rmSync(state, { recursive: true, force: true });
  console.log("deleted .wrangler/state (local D1, R2, KV, Durable Objects, Queues)");
}
applyMigrations();
console.log("local state reset: `npm start` registers the demo models (credit-risk 1.0.0 champion, 1.1.0 challenger)");
