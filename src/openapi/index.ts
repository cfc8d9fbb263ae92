/**
 * The API description: every capability's route entries (one file each in this folder), the
 * document built from them once per isolate, and the routes that serve it: /openapi.json, /docs
 * (a self-contained reference page: no CDN, nothing fetched but the document) and
 * /schemas/manifest.json. A new capability adds `src/openapi/<capability>.ts` exporting its
 * `RouteDoc[]` and lists it in ROUTE_DOCS below.
 */
import { Hono } from "hono";
import { buildDocument } from "./document";
import { docsPage } from "./docs-page";
import { batchDocs } from "./batch";
import { deploymentDocs } from "./deployments";
import { featureDocs } from "./features";
import { healthDocs } from "./health";
import { monitoringDocs } from "./monitoring";
import { retrainingDocs } from "./retraining";
import { manifestJsonSchema, registryDocs } from "./registry";
import { servingDocs } from "./serving";
import type { RouteDoc } from "./spec";

export type { RouteDoc } from "./spec";
export { openApiPath } from "./document";

export const ROUTE_DOCS: RouteDoc[] = [...healthDocs, ...servingDocs, ...registryDocs, ...deploymentDocs, ...monitoringDocs, ...featureDocs, ...batchDocs, ...retrainingDocs];

const API_VERSION = "0.1.0";
let cached: { document: string; manifest: string } | undefined;

function built() {
  cached ??= { document: JSON.stringify(buildDocument(ROUTE_DOCS, { version: API_VERSION })), manifest: JSON.stringify(manifestJsonSchema()) };
  return cached;
}

export const openapiRoutes = new Hono()
  .get("/openapi.json", (c) => c.body(built().document, 200, { "content-type": "application/json; charset=utf-8", "cache-control": "public, max-age=300" }))
  .get("/schemas/manifest.json", (c) => c.body(built().manifest, 200, { "content-type": "application/schema+json; charset=utf-8", "cache-control": "public, max-age=300" }))
  .get("/docs", (c) => c.html(docsPage()));
