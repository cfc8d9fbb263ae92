/**
 * TEST-ONLY: the reference trainer (trainer/trainer.ts, the same code `node trainer/server.ts`
 * runs) as a Node service bound to tests as TEST_TRAINER (vitest.config.ts). The worker's dispatch
 * reaches it through that binding (src/retraining/dispatch.ts uses TEST_TRAINER when present).
 *
 * Workerd under the vitest plugin listens on no port the trainer could call, so the trainer's own
 * requests to the worker (downloads, upload, callbacks) go through a relay: they wait in an outbox
 * that the test drains with SELF.fetch, returning each response unchanged. The bytes, signatures
 * and order are the trainer's; the test only carries them.
 *
 *   POST /train, /down...        the trainer (paths containing "/down" answer 503: trainer down)
 *   GET  /_outbox                requests waiting for the worker
 *   POST /_reply/:id             the worker's response to one of them
 */
import { createTrainer } from "../../trainer/trainer.ts";

export const TEST_TRAINER_SECRET = "test-trainer-secret-0123456789abcdef";

interface Pending {
  id: number;
  method: string;
  url: string;
  headers: Record<string, string>;
  body: string; // base64
  resolve: (r: Response) => void;
  taken: boolean;
}
const pending = new Map<number, Pending>();
let next = 1;
const log: string[] = [];

const trainer = createTrainer({
  secret: TEST_TRAINER_SECRET,
  log: (l) => log.push(l),
  http: async (request) => {
    const body = Buffer.from(await request.arrayBuffer()).toString("base64");
    return new Promise<Response>((resolve) => {
      const id = next++;
      pending.set(id, { id, method: request.method, url: request.url, headers: Object.fromEntries(request.headers), body, resolve, taken: false });
    });
  },
});

export async function trainerService(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/_outbox") {
    const out = [...pending.values()].filter((p) => !p.taken);
    for (const p of out) p.taken = true;
    return Response.json({ requests: out.map(({ resolve: _r, taken: _t, ...p }) => p), log });
  }
  const reply = /^\/_reply\/(\d+)$/.exec(url.pathname);
  if (reply) {
    const p = pending.get(Number(reply[1]));
    if (!p) return new Response("unknown", { status: 404 });
    pending.delete(p.id);
    const r = (await request.json()) as { status: number; headers: Record<string, string>; body: string };
    p.resolve(new Response(r.status === 204 ? null : Buffer.from(r.body, "base64"), { status: r.status, headers: r.headers }));
    return new Response("ok");
  }
  if (url.pathname.includes("/down")) return new Response("trainer down", { status: 503 });
  return trainer(request);
}
