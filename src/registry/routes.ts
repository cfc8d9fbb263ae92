/**
 * Admin API for the registry, mounted at /admin/models (bearer ADMIN_TOKEN required).
 *
 *   GET    /                                   list models
 *   GET    /:name                              model, its versions and aliases
 *   POST   /:name/versions                     register (multipart: manifest JSON + artifact file)
 *   GET    /:name/versions                     list versions
 *   GET    /:name/versions/:version            one version
 *   POST   /:name/versions/:version/archive    archive (refused while it serves traffic)
 *   POST   /:name/versions/:version/restore    bring an archived version back (its artifact must still be in R2), optionally under an alias
 *   PUT    /:name/aliases/:alias               point an alias at a version
 *   DELETE /:name/aliases/:alias               remove an alias
 *   GET    /:name/audit                        audit log, newest first
 *   POST   /:name/versions/:version/profile    time inference in this isolate (mean per run/row)
 *
 * Registration is all-or-nothing: the manifest and artifact are fully validated (the artifact is
 * loaded and probed in onnxruntime-web) before the first write. The artifact goes to R2 under its
 * sha256, then one D1 batch writes model, version, aliases and audit entries; if that batch fails,
 * an R2 object this request created is deleted again.
 */
import { sha256Hex } from "../http/encoding";
import { Hono } from "hono";
import { z } from "zod";
import { ApiError } from "../http/errors";
import { intVar, limitBody, optionalJson, parseJsonText, queryInt, readJson } from "../http/limits";
import { checkArtifact } from "./artifact-check";
import { ARTIFACT_GRACE_MS } from "./sweep";
import { runRegistrationChecks, runRestoreChecks } from "./checks";
import { aliasSchema, manifestSchema, modelNameSchema, semverSchema, zodIssues } from "./manifest";
import { invalidateResolved } from "./resolver";
import {
  archiveVersion,
  artifactInUse,
  artifactKey,
  auditTrail,
  deleteAlias,
  describeVersion,
  findVersion,
  getModel,
  getVersion,
  insertVersion,
  listAliases,
  listModels,
  listVersions,
  registryDb,
  restoreVersion,
  setAlias,
  toModelVersion,
} from "./store";
import { exampleRow } from "../inference/features";
import { profileInference } from "../inference/profile";

type AdminEnv = { Bindings: Env; Variables: { actor: string } };

const MANIFEST_MAX_BYTES = 4 * 1024 * 1024;

function param<T>(schema: z.ZodType<T>, value: string | undefined, what: string): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new ApiError("bad_request", `invalid ${what} '${value}': ${parsed.error.issues[0].message}`);
  return parsed.data;
}

export const profileBody = z
  .object({
    instances: z.array(z.record(z.string(), z.unknown())).min(1).max(1000).optional(),
    rows: z.number().int().min(1).max(1000).default(1),
    iterations: z.number().int().min(1).max(100_000).default(1000),
  })
  .strict();
export const reasonBody = z.object({ reason: z.string().max(1000).optional() }).strict();
export const restoreBody = z
  .object({ reason: z.string().max(1000).optional(), alias: aliasSchema.optional().describe("an alias to point at the restored version in the same transaction, e.g. champion") })
  .strict();
export const aliasBody = z.object({ version: semverSchema, reason: z.string().max(1000).optional() }).strict();

async function parseBody<T>(schema: z.ZodType<T>, raw: unknown): Promise<T> {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new ApiError("invalid_input", "invalid request body", zodIssues(parsed.error));
  return parsed.data;
}

export const registryRoutes = new Hono<AdminEnv>()
  .get("/", async (c) => {
    const rows = await listModels(registryDb(c.env.DB));
    return c.json({ models: rows.map((m) => ({ name: m.name, description: m.description, created_at: m.createdAt, created_by: m.createdBy })) });
  })
  .get("/:name", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const model = await getModel(db, name);
    const [versions, aliasRows] = await Promise.all([listVersions(db, name), listAliases(db, name)]);
    return c.json({
      name: model.name,
      description: model.description,
      created_at: model.createdAt,
      created_by: model.createdBy,
      aliases: Object.fromEntries(aliasRows.map((a) => [a.alias, a.version])),
      versions: versions.map(describeVersion),
    });
  })
  .post(
    "/:name/versions",
    limitBody((env) => intVar(env.MAX_ARTIFACT_BYTES, 25 * 1024 * 1024) + MANIFEST_MAX_BYTES),
    async (c) => {
      const name = param(modelNameSchema, c.req.param("name"), "model name");
      const maxArtifact = intVar(c.env.MAX_ARTIFACT_BYTES, 25 * 1024 * 1024);
      const type = c.req.header("content-type") ?? "";
      if (!/^multipart\/form-data/i.test(type)) throw new ApiError("bad_request", "register with multipart/form-data: fields 'manifest' (JSON) and 'artifact' (ONNX file)");
      let form: FormData;
      try {
        form = await c.req.formData();
      } catch {
        throw new ApiError("bad_request", "malformed multipart/form-data body");
      }
      for (const field of ["manifest", "artifact"]) {
        if (form.getAll(field).length > 1) throw new ApiError("invalid_input", `form field '${field}' given ${form.getAll(field).length} times; give it once`, [{ path: field, message: "given more than once" }]);
      }
      const manifestField = form.get("manifest");
      const artifactField = form.get("artifact");
      if (manifestField === null) throw new ApiError("invalid_input", "missing form field 'manifest'", [{ path: "manifest", message: "required" }]);
      if (!(artifactField instanceof File)) throw new ApiError("invalid_input", "missing file field 'artifact'", [{ path: "artifact", message: "required: the ONNX file" }]);

      const manifestText = typeof manifestField === "string" ? manifestField : await manifestField.text();
      const manifestJson = parseJsonText(manifestText, "manifest");
      const parsed = manifestSchema.safeParse(manifestJson);
      if (!parsed.success) throw new ApiError("invalid_input", "invalid manifest", zodIssues(parsed.error, "manifest"));
      const manifest = parsed.data;
      if (manifest.name !== name) throw new ApiError("bad_request", `manifest name '${manifest.name}' does not match the URL's model '${name}'`);
      await runRegistrationChecks(c.env, manifest);

      const aliasNames = form.getAll("alias").map((a) => param(aliasSchema, String(a), "alias"));

      if (artifactField.size === 0) throw new ApiError("invalid_artifact", "artifact is empty");
      if (artifactField.size > maxArtifact) throw new ApiError("body_too_large", `artifact is ${artifactField.size} bytes; the limit is ${maxArtifact}`);

      const db = registryDb(c.env.DB);
      if (await findVersion(db, name, manifest.version)) throw new ApiError("conflict", `version ${manifest.version} of '${name}' already exists`);

      const bytes = new Uint8Array(await artifactField.arrayBuffer());
      const sha256 = await sha256Hex(bytes);
      if (manifest.artifactSha256 !== undefined && manifest.artifactSha256 !== sha256) {
        throw new ApiError("invalid_artifact", `the uploaded artifact's sha256 is ${sha256}; the manifest declares ${manifest.artifactSha256} (corrupted or wrong file)`, [{ path: "manifest.artifactSha256", message: "does not match the uploaded artifact" }]);
      }
      const info = await checkArtifact(sha256, bytes, manifest.featureSchema, manifest.examples);

      const key = artifactKey(sha256);
      const head = await c.env.ARTIFACTS.head(key);
      const existed = head !== null;
      // An existing copy old enough to be near the orphan sweep's grace period is written again,
      // which renews its upload time, so the sweep cannot take it while this version commits.
      if (!head || head.uploaded.getTime() < Date.now() - ARTIFACT_GRACE_MS / 2) {
        await c.env.ARTIFACTS.put(key, bytes, {
          sha256,
          httpMetadata: { contentType: "application/octet-stream" },
          customMetadata: { model: name, version: manifest.version },
        });
      }
      let row;
      try {
        row = await insertVersion(db, {
          manifest,
          sha256,
          sizeBytes: bytes.byteLength,
          irVersion: info.irVersion,
          opsets: info.opsets,
          actor: c.get("actor"),
          aliases: aliasNames,
        });
      } catch (error) {
        if (!existed && !(await artifactInUse(db, sha256))) await c.env.ARTIFACTS.delete(key);
        if (/UNIQUE constraint failed/i.test(String((error as Error).message) + String((error as { cause?: Error }).cause?.message))) {
          throw new ApiError("conflict", `version ${manifest.version} of '${name}' already exists`);
        }
        throw error;
      }
      invalidateResolved(name);
      return c.json({ ...describeVersion(row), aliases: aliasNames }, 201);
    },
  )
  .get("/:name/versions", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    await getModel(db, name);
    return c.json({ versions: (await listVersions(db, name)).map(describeVersion) });
  })
  .get("/:name/versions/:version", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const version = param(semverSchema, c.req.param("version"), "version");
    return c.json(describeVersion(await getVersion(db, name, version)));
  })
  .post("/:name/versions/:version/archive", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const version = param(semverSchema, c.req.param("version"), "version");
    const { reason } = await parseBody(reasonBody, await optionalJson(c));
    const row = await archiveVersion(db, name, version, c.get("actor"), reason);
    invalidateResolved(name);
    return c.json(describeVersion(row));
  })
  .post("/:name/versions/:version/restore", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const version = param(semverSchema, c.req.param("version"), "version");
    const { reason, alias } = await parseBody(restoreBody, await optionalJson(c));
    const archived = toModelVersion(await getVersion(db, name, version));
    if (archived.status === "archived") await runRestoreChecks(c.env, { name, version, featureSchema: archived.featureSchema });
    const { row } = await restoreVersion(db, c.env.ARTIFACTS, name, version, c.get("actor"), reason, alias);
    invalidateResolved(name);
    return c.json(describeVersion(row));
  })
  .put("/:name/aliases/:alias", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const alias = param(aliasSchema, c.req.param("alias"), "alias");
    const body = await parseBody(aliasBody, await readJson(c));
    await getModel(db, name);
    const result = await setAlias(db, name, alias, body.version, c.get("actor"), body.reason);
    invalidateResolved(name);
    return c.json(result);
  })
  .delete("/:name/aliases/:alias", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const alias = param(aliasSchema, c.req.param("alias"), "alias");
    const { reason } = await parseBody(reasonBody, await optionalJson(c));
    await deleteAlias(db, name, alias, c.get("actor"), reason);
    invalidateResolved(name);
    return c.body(null, 204);
  })
  .post("/:name/versions/:version/profile", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    const version = param(semverSchema, c.req.param("version"), "version");
    const body = await parseBody(profileBody, await optionalJson(c));
    const row = toModelVersion(await getVersion(db, name, version));
    const rows = body.instances ?? Array.from({ length: body.rows }, () => exampleRow(row.featureSchema));
    return c.json(await profileInference(c.env, row, rows, body.iterations));
  })
  .get("/:name/audit", async (c) => {
    const db = registryDb(c.env.DB);
    const name = param(modelNameSchema, c.req.param("name"), "model name");
    await getModel(db, name);
    const limit = queryInt(c.req.query("limit"), "limit", 1, 500, 50);
    const before = c.req.query("before") === undefined ? undefined : queryInt(c.req.query("before"), "before", 1, Number.MAX_SAFE_INTEGER, 0);
    return c.json(await auditTrail(db, name, limit, before));
  });
