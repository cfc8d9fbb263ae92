/**
 * `npm start`: the local server with the demo models, in one command.
 * Applies D1 migrations to the local state in .wrangler/, starts `wrangler dev` on
 * 127.0.0.1:8787, registers the demo credit-risk models (champion = logistic regression,
 * challenger = gradient-boosted trees) and keeps serving until interrupted. Cron Triggers run as
 * in production: each minute the scheduled handler runs for the crons of wrangler.toml that match
 * (scripts/lib/cron-ticker.ts). PORT sets the port; EML_CRON=off turns the cron ticks off.
 */
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer } from "./lib/dev-server.ts";
import { configuredCrons, startCronTicker } from "./lib/cron-ticker.ts";

const port = Number(process.env.PORT ?? 8787);
const vars = ensureDevVars();
applyMigrations();
const server = await startDevServer({ port });
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => void server.stop().then(() => process.exit(0)));
try {
  await registerDemoModels(server.url, vars.ADMIN_TOKEN);
} catch (error) {
  console.error(String(error));
  await server.stop();
  process.exit(1);
}
const crons = process.env.EML_CRON === "off" ? [] : configuredCrons(ROOT);
const stopCron = startCronTicker(server.url, crons);
server.child.once("exit", () => stopCron());
console.log(`
edge-ml-runtime is serving on ${server.url}
  Cron Triggers: ${crons.length ? crons.map((c) => `"${c}"`).join(", ") + " run each minute they match (UTC)" : "off"}
  curl -s ${server.url}/v1/models/credit-risk/predict -H 'content-type: application/json' \\
    -d '{"features":{"Seniority":9,"Home":"rent","Time":60,"Age":30,"Marital":"married","Records":"no","Job":"freelance","Expenses":73,"Income":129,"Assets":0,"Debt":0,"Amount":800,"Price":846}}'
Admin token: see ADMIN_TOKEN in .dev.vars. Press Ctrl-C to stop.`);
server.child.once("exit", (code) => process.exit(code ?? 0));
