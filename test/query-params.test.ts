/**
 * Query parameters are checked, not replaced or ignored (found by a black-box probe):
 * - integers (limit, before): a fraction, text, zero, a negative or an out-of-range value is a 400
 *   naming the parameter. Before, `?limit=1.5` on the alerts route reached SQLite and answered 500,
 *   `?limit=-5` returned the whole history, and the audit, batch and alert routes silently answered
 *   a default page;
 * - names: a version or model that was never registered is a 404, not an empty 200.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN, call, registerStem } from "./support/api";

beforeAll(async () => {
  expect((await registerStem("models", "credit-risk-lr", ["champion"], { name: "qp-model" })).status).toBe(201);
});

const routes = [
  { path: "/v1/monitoring/models/qp-model/alerts", param: "limit", range: "1..1000" },
  { path: "/admin/models/qp-model/audit", param: "limit", range: "1..500" },
  { path: "/admin/models/qp-model/audit", param: "before", range: "1.." },
  { path: "/v1/batch", param: "limit", range: "1..100" },
];

describe("integer query parameters", () => {
  for (const { path, param, range } of routes) {
    it(`${path}?${param}= refuses what is not an integer in ${range}, and takes one that is`, async () => {
      for (const bad of ["1.5", "-5", "0", "abc", "1e9", "", "99999999999999999999"]) {
        const r = await call("GET", `${path}?${param}=${encodeURIComponent(bad)}`, undefined, ADMIN);
        expect(r.status, `${param}=${bad}: ${r.text}`).toBe(400);
        expect(r.json.error).toMatchObject({ code: "bad_request", message: expect.stringContaining(`${param}: an integer ${range}`) });
      }
      const ok = await call("GET", `${path}?${param}=2`, undefined, ADMIN);
      expect(ok.status, ok.text).toBe(200);
    });
  }

  it("a limit is applied as given", async () => {
    for (let i = 0; i < 3; i++) expect((await call("PUT", "/admin/models/qp-model/aliases/a" + i, { version: "1.0.0" }, ADMIN)).status).toBeLessThan(300);
    const page = await call("GET", "/admin/models/qp-model/audit?limit=2", undefined, ADMIN);
    expect(page.json.entries).toHaveLength(2);
    const next = await call("GET", `/admin/models/qp-model/audit?limit=2&before=${page.json.next_before}`, undefined, ADMIN);
    expect(next.status).toBe(200);
    expect(next.json.entries[0].id).toBeLessThan(page.json.next_before);
  });

  it("a version or model that was never registered is a 404, not an empty answer", async () => {
    const unknownVersion = await call("GET", "/v1/monitoring/models/qp-model/summary?version=9.9.9", undefined, ADMIN);
    expect(unknownVersion.status, unknownVersion.text).toBe(404);
    expect(unknownVersion.json.error.message).toMatch(/9\.9\.9/);
    expect((await call("GET", "/v1/monitoring/models/qp-model/summary?version=1.0.0", undefined, ADMIN)).status).toBe(200);
    const unknownModel = await call("GET", "/admin/retraining/qp-nope/jobs", undefined, ADMIN);
    expect(unknownModel.status, unknownModel.text).toBe(404);
    expect((await call("GET", "/admin/retraining/qp-model/jobs", undefined, ADMIN)).status).toBe(200);
  });
});
