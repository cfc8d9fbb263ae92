/**
 * How a route is described for the OpenAPI document: one `RouteDoc` per method and path, pointing
 * at the zod schemas the route itself parses with (request bodies, path and query parameters) and
 * at the response schemas in responses.ts. Each capability keeps its entries in its own file here
 * (serving.ts, registry.ts, deployments.ts, monitoring.ts, …) and index.ts lists the files; a test
 * (test/openapi.test.ts) fails when the app has a route no entry describes, and checks real
 * responses against the document.
 *
 * Why a table beside the routes rather than @hono/zod-openapi: its `createRoute`/`app.openapi()`
 * would mean rewriting every handler of every capability (while others change them), for the same
 * result: the schemas here are the very objects the handlers parse with, converted by zod v4's own
 * `z.toJSONSchema`, so request documentation cannot drift from validation.
 */
import type { z } from "zod";

export type Method = "get" | "post" | "put" | "delete" | "patch";

/** Who may call: admin bearer token, prediction API key (when REQUIRE_API_KEY), /metrics token, the model's trainer (HMAC signature), anyone. */
export type Auth = "admin" | "api_key" | "metrics" | "trainer" | "none";

export interface ResponseDoc {
  description: string;
  /** JSON body schema (application/json), unless `contentType` says otherwise. */
  schema?: z.ZodType;
  contentType?: string;
  example?: unknown;
}

export interface RouteDoc {
  method: Method;
  /** Hono path syntax, as mounted in src/app.ts: "/admin/models/:name". */
  path: string;
  summary: string;
  description?: string;
  /** The capability, used as the OpenAPI tag. */
  tag: string;
  auth: Auth;
  params?: Record<string, z.ZodType>;
  query?: Record<string, z.ZodType>;
  body?: { schema: z.ZodType; contentType?: "application/json" | "multipart/form-data"; required?: boolean; example?: unknown };
  /** Success responses by status code. */
  responses: Record<number, ResponseDoc>;
  /** Error statuses the route itself can answer (401/429/500 from auth, limits and faults are added). */
  errors?: number[];
}
