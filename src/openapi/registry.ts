/** OpenAPI entries for the registry admin API (src/registry/routes.ts), mounted at /admin/models. */
import { z } from "zod";
import { aliasSchema, manifestSchema, modelNameSchema, semverSchema } from "../registry/manifest";
import { aliasBody, profileBody, reasonBody, restoreBody } from "../registry/routes";
import * as r from "./responses";
import type { RouteDoc } from "./spec";

const name = { name: modelNameSchema };
const nameVersion = { name: modelNameSchema, version: semverSchema };
const doc = (d: Omit<RouteDoc, "tag" | "auth">): RouteDoc => ({ tag: "registry", auth: "admin", ...d });

/** The multipart form of a registration: the manifest as JSON text, the ONNX file, optional aliases. */
const registerForm = z.object({
  manifest: z.string().describe("the manifest as JSON text; its schema is GET /schemas/manifest.json"),
  artifact: z.string().describe("the ONNX file (binary)"),
  alias: z.union([aliasSchema, z.array(aliasSchema)]).optional().describe("aliases to point at the new version (repeat the field for several)"),
});

export const registryDocs: RouteDoc[] = [
  doc({ method: "get", path: "/admin/models", summary: "List models", responses: { 200: { description: "models", schema: r.modelList } } }),
  doc({ method: "get", path: "/admin/models/:name", summary: "A model, its versions and aliases", params: name, responses: { 200: { description: "the model", schema: r.modelDetail } }, errors: [400, 404] }),
  doc({
    method: "post", path: "/admin/models/:name/versions", summary: "Register a version (manifest + ONNX artifact), all or nothing",
    description: "The manifest is validated (every problem named by path) and the artifact loaded in onnxruntime-web and probed before anything is written. `npm run cli -- register` builds the manifest from the ONNX file and training data.",
    params: name,
    body: { schema: registerForm, contentType: "multipart/form-data" },
    responses: { 201: { description: "registered", schema: r.registered } },
    errors: [400, 404, 409, 413, 422],
  }),
  doc({ method: "get", path: "/admin/models/:name/versions", summary: "List versions", params: name, responses: { 200: { description: "versions", schema: r.versionList } }, errors: [400, 404] }),
  doc({ method: "get", path: "/admin/models/:name/versions/:version", summary: "One version", params: nameVersion, responses: { 200: { description: "the version", schema: r.modelVersion } }, errors: [400, 404] }),
  doc({
    method: "post", path: "/admin/models/:name/versions/:version/archive", summary: "Archive a version (refused while it serves traffic)",
    params: nameVersion, body: { schema: reasonBody, required: false, example: { reason: "superseded" } },
    responses: { 200: { description: "archived", schema: r.modelVersion } }, errors: [400, 404, 409, 422],
  }),
  doc({
    method: "post", path: "/admin/models/:name/versions/:version/restore",
    summary: "Restore an archived version to registered (409 when it is not archived or its artifact is gone from R2)",
    params: nameVersion, body: { schema: restoreBody, required: false, example: { reason: "archived by mistake", alias: "champion" } },
    responses: { 200: { description: "registered again", schema: r.modelVersion } }, errors: [400, 404, 409, 422],
  }),
  doc({
    method: "put", path: "/admin/models/:name/aliases/:alias", summary: "Point an alias at a version",
    params: { name: modelNameSchema, alias: aliasSchema }, body: { schema: aliasBody, example: { version: "1.1.0", reason: "higher KS on the holdout" } },
    responses: { 200: { description: "the alias move", schema: r.anyJson } }, errors: [400, 404, 409, 422],
  }),
  doc({
    method: "delete", path: "/admin/models/:name/aliases/:alias", summary: "Remove an alias",
    params: { name: modelNameSchema, alias: aliasSchema }, body: { schema: reasonBody, required: false },
    responses: { 200: { description: "removed", schema: r.anyJson } }, errors: [400, 404, 409],
  }),
  doc({ method: "get", path: "/admin/models/:name/audit", summary: "Audit log, newest first", params: name, query: { limit: z.coerce.number().int().min(1).max(500).optional(), before: z.coerce.number().int().min(1).optional() }, responses: { 200: { description: "a page", schema: r.auditPage } }, errors: [400] }),
  doc({
    method: "post", path: "/admin/models/:name/versions/:version/profile", summary: "Time inference in this isolate",
    params: nameVersion, body: { schema: profileBody, example: { rows: 1, iterations: 5000 } },
    responses: { 200: { description: "timings", schema: r.anyJson } }, errors: [400, 404, 422],
  }),
];

/** The manifest's JSON Schema, published at /schemas/manifest.json. */
export const manifestJsonSchema = () => z.toJSONSchema(manifestSchema, { io: "input", unrepresentable: "any", target: "draft-2020-12" });
