/**
 * Builds the OpenAPI 3.1 document from the route entries: path and query parameters, request
 * bodies and responses converted from zod with `z.toJSONSchema` (JSON Schema 2020-12, OpenAPI
 * 3.1's own dialect; request shapes in zod's "input" view, so defaults read as optional), the
 * shared error body on every error status, and the security each route needs.
 */
import { z } from "zod";
import { errorBody } from "./responses";
import type { Auth, RouteDoc } from "./spec";

type Json = Record<string, unknown>;

export function jsonSchema(schema: z.ZodType, io: "input" | "output"): Json {
  const out = z.toJSONSchema(schema, { io, unrepresentable: "any", target: "draft-2020-12" }) as Json;
  delete out.$schema;
  return out;
}

/** "/admin/models/:name" -> "/admin/models/{name}" */
export function openApiPath(honoPath: string): string {
  return honoPath.replace(/:([A-Za-z_][A-Za-z0-9_]*)/g, "{$1}");
}

const ERROR_TEXT: Record<number, string> = {
  400: "bad request (a malformed parameter or body); nothing changed",
  401: "missing or wrong credentials",
  404: "no such model, version, alias or deployment",
  409: "conflict with the current state (stale revision, version serving traffic, already exists); nothing changed",
  413: "body or batch larger than the configured limit",
  422: "invalid input: `error.details` names every bad field; nothing changed",
  429: "request rate limit reached",
  500: "internal error (no internals in the body; see the logs by request_id)",
  503: "unavailable",
};

const SECURITY: Record<Auth, Json[] | undefined> = {
  admin: [{ adminToken: [] }],
  // An API key is needed only when REQUIRE_API_KEY = "true"; `{}` states that it may be absent.
  api_key: [{ apiKey: [] }, { apiKeyBearer: [] }, {}],
  metrics: [{ metricsToken: [] }, {}],
  trainer: [{ trainerSignature: [] }],
  none: [],
};

function isOptional(schema: z.ZodType): boolean {
  return schema.safeParse(undefined).success;
}

function operation(route: RouteDoc): Json {
  const parameters: Json[] = [];
  for (const [name, schema] of Object.entries(route.params ?? {})) parameters.push({ name, in: "path", required: true, schema: jsonSchema(schema, "input") });
  for (const [name, schema] of Object.entries(route.query ?? {})) parameters.push({ name, in: "query", required: !isOptional(schema), schema: jsonSchema(schema, "input") });
  const responses: Json = {};
  for (const [status, res] of Object.entries(route.responses)) {
    const contentType = res.contentType ?? "application/json";
    responses[status] = {
      description: res.description,
      ...(res.schema || contentType !== "application/json"
        ? { content: { [contentType]: { schema: res.schema ? jsonSchema(res.schema, "output") : { type: "string" }, ...(res.example !== undefined ? { example: res.example } : {}) } } }
        : {}),
    };
  }
  const errors = new Set(route.errors ?? []);
  if (route.auth !== "none") errors.add(401);
  if (route.auth === "admin" || route.auth === "api_key" || route.auth === "trainer") errors.add(429);
  errors.add(500);
  const error = jsonSchema(errorBody, "output");
  for (const status of [...errors].sort()) {
    if (responses[status]) continue;
    responses[status] = { description: ERROR_TEXT[status] ?? "error", content: { "application/json": { schema: error } } };
  }
  return {
    operationId: `${route.method}${openApiPath(route.path).replace(/[{}]/g, "").replace(/[^A-Za-z0-9]+(.)?/g, (_, c: string | undefined) => (c ? c.toUpperCase() : ""))}`,
    summary: route.summary,
    ...(route.description ? { description: route.description } : {}),
    tags: [route.tag],
    security: SECURITY[route.auth],
    ...(parameters.length ? { parameters } : {}),
    ...(route.body
      ? {
          requestBody: {
            required: route.body.required ?? true,
            content: { [route.body.contentType ?? "application/json"]: { schema: jsonSchema(route.body.schema, "input"), ...(route.body.example !== undefined ? { example: route.body.example } : {}) } },
          },
        }
      : {}),
    responses,
  };
}

export function buildDocument(routes: RouteDoc[], opts: { version: string; serverUrl?: string }): Json {
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const p = (paths[openApiPath(route.path)] ??= {});
    if (p[route.method]) throw new Error(`OpenAPI: ${route.method.toUpperCase()} ${route.path} is described twice`);
    p[route.method] = operation(route);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "edge-ml-runtime",
      version: opts.version,
      description: "ONNX models on Cloudflare Workers: registry, inference, traffic routing, monitoring. Errors are `{error: {code, message, details?}, request_id}`; every response carries `x-request-id`.",
    },
    ...(opts.serverUrl ? { servers: [{ url: opts.serverUrl }] } : {}),
    tags: [...new Set(routes.map((r) => r.tag))].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        adminToken: { type: "http", scheme: "bearer", description: "ADMIN_TOKEN (wrangler secret)" },
        apiKey: { type: "apiKey", in: "header", name: "x-api-key", description: "one of API_KEYS; required when REQUIRE_API_KEY = \"true\"" },
        apiKeyBearer: { type: "http", scheme: "bearer", description: "an API key as a bearer token" },
        metricsToken: { type: "http", scheme: "bearer", description: "METRICS_TOKEN, when that secret is set" },
        trainerSignature: { type: "apiKey", in: "header", name: "x-edge-ml-signature", description: "HMAC-SHA256 of the request with the model's trainer secret (src/retraining/signing.ts)" },
      },
      schemas: { Error: jsonSchema(errorBody, "output") },
    },
  };
}
