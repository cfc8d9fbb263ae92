/**
 * Sweep of orphaned artifacts: R2 objects under `artifacts/sha256/` that no version row references.
 *
 * Registration writes the artifact to R2 before the D1 batch that references it (so a version row
 * never points at a missing object). A process killed between the two writes leaves an object no
 * version references; nothing else ever deletes it. The daily cron removes such objects once they
 * are older than ARTIFACT_GRACE_MS, far longer than any registration takes.
 *
 * Races with registration: a registration that reuses an existing object refreshes it (re-put)
 * when it is older than half the grace period, so an object a registration is about to reference
 * is never old. The sweep reads the object's upload time first, then D1, then deletes: a
 * registration whose D1 batch lands before the D1 read keeps its object; what remains is the
 * moment between that read and the delete, against a registration that found an old, unreferenced
 * copy of the very same bytes, re-put it and committed in that moment.
 *
 * Work per run is bounded (MAX_PAGES listings of 1,000 objects); what is left waits for the next run.
 */
import { inArray } from "drizzle-orm";
import { registryDb } from "./store";
import { modelVersions } from "./tables";

export const ARTIFACT_PREFIX = "artifacts/sha256/";
export const ARTIFACT_GRACE_MS = 24 * 3_600_000;
const MAX_PAGES = 10;
/** D1 allows 100 bound parameters a query. */
const IN_CHUNK = 90;

export interface SweepResult {
  listed: number;
  deleted: string[];
}

const shaOf = (key: string) => key.slice(ARTIFACT_PREFIX.length).replace(/\.onnx$/, "");

export async function sweepArtifacts(env: Env, now = Date.now(), graceMs = ARTIFACT_GRACE_MS): Promise<SweepResult> {
  const db = registryDb(env.DB);
  const result: SweepResult = { listed: 0, deleted: [] };
  let cursor: string | undefined;
  for (let page = 0; page < MAX_PAGES; page++) {
    const listing = await env.ARTIFACTS.list({ prefix: ARTIFACT_PREFIX, cursor, limit: 1000 });
    result.listed += listing.objects.length;
    const old = listing.objects.filter((o) => o.uploaded.getTime() < now - graceMs);
    for (let i = 0; i < old.length; i += IN_CHUNK) {
      const chunk = old.slice(i, i + IN_CHUNK);
      const referenced = new Set(
        (await db.select({ sha256: modelVersions.sha256 }).from(modelVersions).where(inArray(modelVersions.sha256, chunk.map((o) => shaOf(o.key)))).all()).map((r) => r.sha256),
      );
      const orphans = chunk.filter((o) => !referenced.has(shaOf(o.key))).map((o) => o.key);
      if (orphans.length) {
        await env.ARTIFACTS.delete(orphans);
        result.deleted.push(...orphans);
      }
    }
    if (!listing.truncated) break;
    cursor = listing.cursor;
  }
  if (result.deleted.length) console.log(JSON.stringify({ level: "info", msg: "artifact sweep removed unreferenced artifacts", deleted: result.deleted }));
  return result;
}
