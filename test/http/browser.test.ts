/**
 * What browsers and log pipelines see: secure headers on every answer, CORS only for the origins
 * configured in CORS_ORIGINS (preflights answered before credentials), and one structured JSON log
 * line per request naming route, model, version, status, latency, the server's request id and the
 * caller's correlation id.
 */
import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { createApp } from "../../src/app";
import { registerStem } from "../support/api";

const app = createApp();
const ROW = { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 };

async function fetchWith(vars: Record<string, string>, path: string, init: RequestInit = {}) {
  const ctx = createExecutionContext();
  const res = await app.fetch(new Request(`http://worker${path}`, init), { ...env, ...vars }, ctx);
  await waitOnExecutionContext(ctx);
  return res;
}

beforeAll(async () => {
  const r = await registerStem("models", "credit-risk-lr", ["champion"]);
  expect(r.status).toBe(201);
});
afterEach(() => vi.restoreAllMocks());

describe("secure headers", () => {
  it("every answer carries them, errors included", async () => {
    for (const path of ["/health", "/no-such-route", "/admin/models"]) {
      const res = await fetchWith({}, path);
      expect(res.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(res.headers.get("x-frame-options"), path).toBe("SAMEORIGIN");
      expect(res.headers.get("strict-transport-security"), path).toMatch(/max-age=/);
      expect(res.headers.get("content-security-policy"), path).toContain("frame-ancestors 'none'");
    }
  });
});

describe("CORS", () => {
  it("sends no CORS headers when CORS_ORIGINS is empty (the default)", async () => {
    const res = await fetchWith({ CORS_ORIGINS: "" }, "/health", { headers: { origin: "https://app.example" } });
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("allows a configured origin, refuses others, and answers preflights of admin routes without credentials", async () => {
    const vars = { CORS_ORIGINS: "https://app.example, https://ops.example" };
    const ok = await fetchWith(vars, "/health", { headers: { origin: "https://ops.example" } });
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://ops.example");
    expect(ok.headers.get("access-control-expose-headers")).toContain("x-request-id");
    const other = await fetchWith(vars, "/health", { headers: { origin: "https://evil.example" } });
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
    const preflight = await fetchWith(vars, "/admin/models", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "GET", "access-control-request-headers": "authorization" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
  });
});

describe("request logs", () => {
  it("writes one JSON line per request with route, model, version, status, latency and request id", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((s: unknown) => void lines.push(String(s)));
    const res = await fetchWith({ REQUEST_LOGS: "true" }, "/v1/models/credit-risk/predict", {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "log-test-1" },
      body: JSON.stringify({ features: ROW }),
    });
    expect(res.status).toBe(200);
    const bad = await fetchWith({ REQUEST_LOGS: "true" }, "/v1/models/credit-risk/predict", { method: "POST", headers: { "content-type": "application/json", "x-request-id": "log-test-2" }, body: "{}" });
    const logs = lines.filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).filter((l) => l.msg === "request");
    // The line carries the server's request id (the one the response names) and the caller's own id as correlation id.
    const ok = logs.find((l) => l.correlation_id === "log-test-1");
    expect(ok).toMatchObject({ level: "info", method: "POST", route: "/v1/models/:name/predict", model: "credit-risk", version: "1.0.0", status: 200 });
    expect(ok.request_id).toBe(res.headers.get("x-request-id"));
    expect(ok.request_id).not.toBe("log-test-1");
    expect(typeof ok.latency_ms).toBe("number");
    expect(logs.find((l) => l.correlation_id === "log-test-2")).toMatchObject({ level: "warn", status: 422, model: "credit-risk", request_id: bad.headers.get("x-request-id") });
  });

  it("REQUEST_LOGS=false writes none", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((s: unknown) => void lines.push(String(s)));
    await fetchWith({ REQUEST_LOGS: "false" }, "/health");
    expect(lines.filter((l) => l.includes('"msg":"request"'))).toEqual([]);
  });
});
