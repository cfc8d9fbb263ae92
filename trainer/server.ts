/**
 * The reference trainer as a Node HTTP service: `TRAINER_SECRET=... node trainer/server.ts`
 * (PORT, default 8817). It listens for signed job specs on POST /train and reaches the worker at
 * the URLs the spec carries. Contract: README "Retraining"; training: trainer/trainer.ts.
 */
import { createServer } from "node:http";
import { createTrainer } from "./trainer.ts";

const secret = process.env.TRAINER_SECRET;
if (!secret || secret.length < 32) {
  console.error("set TRAINER_SECRET (at least 32 characters, the model's trainer_secret)");
  process.exit(1);
}
const port = Number(process.env.PORT ?? 8817);
const handle = createTrainer({ secret, http: (req) => fetch(req) });

createServer(async (req, res) => {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  const request = new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, {
    method: req.method,
    headers: Object.entries(req.headers).flatMap(([k, v]) => (v === undefined ? [] : [[k, Array.isArray(v) ? v.join(", ") : v] as [string, string]])),
    body: req.method === "GET" || req.method === "HEAD" ? undefined : Buffer.concat(chunks),
  });
  const response = await handle(request);
  res.writeHead(response.status, Object.fromEntries(response.headers));
  res.end(Buffer.from(await response.arrayBuffer()));
}).listen(port, "127.0.0.1", () => console.log(`reference trainer on http://127.0.0.1:${port}`));
