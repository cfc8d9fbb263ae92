/**
 * `npm start`: the local server with the demo models, in one command.
 * Applies D1 migrations to the local state in .wrangler/, starts `wrangler dev` on
 * 127.0.0.1:8787, registers the demo credit-risk models (champion = logistic regression,
 * challenger = gradient-boosted trees) and keeps serving until interrupted.
 */
import { applyMigrations, ensureDevVars, registerDemoModels, startDevServer } from "./lib/dev-server.ts";

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
console.log(`
edge-ml-runtime is serving on ${server.url}
  curl -s ${server.url}/v1/models/credit-risk/predict -H 'content-type: application/json' \\
    -d '{"features":{"Seniority":9,"Home":"rent","Time":60,"Age":30,"Marital":"married","Records":"no","Job":"freelance","Expenses":73,"Income":129,"Assets":0,"Debt":0,"Amount":800,"Price":846}}'
Admin token: see ADMIN_TOKEN in .dev.vars. Press Ctrl-C to stop.`);
server.child.once("exit", (code) => process.exit(code ?? 0));
