/**
 * Changes to feature definitions that would break what reads them, through real HTTP (SELF.fetch)
 * against local D1, KV, R2 and the load queue: retiring a feature, or one version of it, that a
 * model version (not archived) takes from the store is refused (409, naming the versions) until
 * that version is archived; redefining a feature with a type that no longer fits an active online
 * feature or a model version reading it is refused (409, naming both); compatible redefinitions,
 * and changes to features nobody reads, still succeed. A refused change writes nothing, and
 * predictions by entity id and online features keep serving.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { eventually } from "../monitoring/helpers";
import { ADMIN, call, register } from "../support/api";
import { repoBytes, repoJson } from "../support/files";

const define = (body: unknown) => call("POST", "/admin/features/definitions", body, ADMIN);
const retire = (name: string, body: unknown = {}) => call("POST", `/admin/features/definitions/customers/${name}/retire`, body, ADMIN);
const versionsOf = async (name: string) =>
  ((await call("GET", `/admin/features/definitions/customers/${name}`, undefined, ADMIN)).json?.versions ?? []).map((v: any) => ({ version: v.version, dtype: v.dtype, status: v.status }));

const REST = { Seniority: 9, Home: "rent", Time: 60, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Assets: 0, Amount: 800, Price: 846 };
const predict = () => call("POST", "/v1/models/credit-store/predict", { entity_id: "c1", features: REST });

let manifest: any;
let artifact: Uint8Array;
/** The README's credit-store model: Income, Debt and Age from the store (optionally pinned), at `version`. */
const registerCreditStore = (version: string, stores: Record<string, unknown>, aliases: string[] = []) =>
  register(
    "credit-store",
    {
      ...manifest,
      name: "credit-store",
      version,
      featureSchema: { ...manifest.featureSchema, features: manifest.featureSchema.features.map((f: any) => (stores[f.name] ? { ...f, store: stores[f.name] } : f)) },
    },
    artifact,
    aliases,
  );

beforeAll(async () => {
  manifest = await repoJson("models/credit-risk-lr.manifest.json");
  artifact = await repoBytes("models/credit-risk-lr.onnx");
  const defs = [
    { group: "customers", name: "income", kind: "offline", dtype: "numeric" },
    { group: "customers", name: "debt", kind: "offline", dtype: "numeric", fallback: { policy: "default", value: 0 } },
    { group: "customers", name: "age", kind: "offline", dtype: "integer" },
    { group: "customers", name: "notes", kind: "offline", dtype: "numeric" },
    { group: "customers", name: "dti", kind: "online", dtype: "numeric", expression: "ratio(debt, income)" },
  ];
  for (const d of defs) expect((await define(d)).status, d.name).toBe(201);
  const csv = "customer_id,income,debt,age\nc1,100,20,40\nc2,80,10,30\n";
  const load = await call("POST", "/admin/features/loads?group=customers&entity_column=customer_id", csv, { ...ADMIN, "content-type": "text/csv" });
  expect(load.status).toBe(202);
  await eventually(async () => expect((await call("GET", `/admin/features/loads/${load.json.id}`, undefined, ADMIN)).json.status).toBe("succeeded"), 60_000);
});

describe("retiring a feature a model version reads", () => {
  it("is refused while a version that is not archived reads it, naming the version, and changes nothing", async () => {
    const reg = await registerCreditStore("1.0.0", { Income: { group: "customers", name: "income" }, Debt: { group: "customers", name: "debt" }, Age: { group: "customers", name: "age" } }, ["champion"]);
    expect(reg.status).toBe(201);
    expect((await predict()).status).toBe(200);

    const refused = await retire("age");
    expect(refused.status).toBe(409);
    expect(refused.json.error.code).toBe("conflict");
    expect(refused.json.error.message).toBe(
      "'customers.age' is read by model version(s) credit-store 1.0.0, which retiring it would break; archive those versions (or register versions that fit) first",
    );
    expect(refused.json.error.details).toEqual([{ path: "model_versions.credit-store@1.0.0.Age", message: "after this change, feature-store feature 'customers.age' does not exist or is retired" }]);
    expect(await versionsOf("age")).toEqual([{ version: 1, dtype: "integer", status: "active" }]);
    const served = await predict();
    expect(served.status).toBe(200);
    expect(served.json.feature_sources.Age).toMatch(/kv|cache/);
  });

  it("refuses retiring a pinned version only while a version pins it; a compatible redefinition is accepted meanwhile", async () => {
    expect((await registerCreditStore("1.1.0", { Income: { group: "customers", name: "income" }, Age: { group: "customers", name: "age", version: 1 } })).status).toBe(201);
    // Same type, new description: a new version, which 1.0.0 (current version) reads from now on.
    const v2 = await define({ group: "customers", name: "age", kind: "offline", dtype: "integer", description: "age in years" });
    expect(v2.status).toBe(201);
    expect(v2.json.version).toBe(2);

    // 1.0.0 reads the current version (2, still active); only 1.1.0, pinned to version 1, is in the way.
    const refused = await retire("age", { version: 1 });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toMatch(/read by model version\(s\) credit-store 1\.1\.0, which retiring it would break/);
    expect(refused.json.error.details).toEqual([
      { path: "model_versions.credit-store@1.1.0.Age", message: "after this change, feature-store feature 'customers.age' version 1 does not exist or is retired" },
    ]);
    expect(await versionsOf("age")).toEqual([
      { version: 2, dtype: "integer", status: "active" },
      { version: 1, dtype: "integer", status: "active" },
    ]);

    expect((await call("POST", "/admin/models/credit-store/versions/1.1.0/archive", { reason: "done" }, ADMIN)).status).toBe(200);
    const retired = await retire("age", { version: 1 });
    expect(retired.status).toBe(200);
    expect(retired.json.versions.map((v: any) => [v.version, v.status])).toEqual([
      [2, "active"],
      [1, "retired"],
    ]);
    expect((await predict()).status).toBe(200);
  });

  it("is allowed once the versions reading it are archived", async () => {
    const refused = await retire("age");
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toMatch(/model version\(s\) credit-store 1\.0\.0,/);
    // Archiving needs the alias moved first (archive is refused while a version serves traffic).
    expect((await call("DELETE", "/admin/models/credit-store/aliases/champion", undefined, ADMIN)).status).toBe(204);
    expect((await call("POST", "/admin/models/credit-store/versions/1.0.0/archive", {}, ADMIN)).status).toBe(200);
    const retired = await retire("age");
    expect(retired.status).toBe(200);
    expect(retired.json.versions.map((v: any) => v.status)).toEqual(["retired", "retired"]);
    // Restoring the archived version runs registration's checks again: what it reads is gone (409), and it stays archived.
    const restore = await call("POST", "/admin/models/credit-store/versions/1.0.0/restore", { alias: "champion" }, ADMIN);
    expect(restore.status, restore.text).toBe(409);
    expect(restore.json.error.message).toMatch(/cannot be restored: .*store/);
    const model = await call("GET", "/admin/models/credit-store", undefined, ADMIN);
    expect(model.json.versions.find((v: any) => v.version === "1.0.0").status).toBe("archived");
    expect(model.json.aliases.champion).toBeUndefined();
  });
});

describe("redefining a feature with another type", () => {
  beforeAll(async () => {
    // Age now comes with the request; Income and Debt from the store.
    expect((await registerCreditStore("2.0.0", { Income: { group: "customers", name: "income" }, Debt: { group: "customers", name: "debt" } }, ["champion"])).status).toBe(201);
  });

  it("is refused when the new type does not fit an active online feature or a model version reading it, naming both, and changes nothing", async () => {
    const refused = await define({ group: "customers", name: "income", kind: "offline", dtype: "categorical" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toBe(
      "'customers.income' is read by active online feature(s) dti and model version(s) credit-store 2.0.0, which redefining it as categorical would break; retire or redefine those features and archive those versions (or register versions that fit) first",
    );
    expect(refused.json.error.details).toEqual([
      { path: "online_features.dti", message: "reads 'customers.income' as a number (numeric); it would become categorical" },
      { path: "model_versions.credit-store@2.0.0.Income", message: "after this change, feature-store feature 'customers.income' is categorical; 'Income' is numeric" },
    ]);
    expect(await versionsOf("income")).toEqual([{ version: 1, dtype: "numeric", status: "active" }]);

    const dti = await call("POST", "/v1/features/get", { group: "customers", entity_id: "c1", features: ["dti"] });
    expect(dti.status).toBe(200);
    expect(dti.json.values.dti).toBeCloseTo(0.2, 10);
    expect((await call("POST", "/v1/models/credit-store/predict", { entity_id: "c1", features: { ...REST, Age: 40 } })).status).toBe(200);
  });

  it("names only the readers it breaks: a model version alone when no online feature reads the name", async () => {
    // dti reads debt too, so retype through an online feature alone is covered above; here the
    // model is the only reader of 'dti' itself.
    expect((await registerCreditStore("2.1.0", { Expenses: { group: "customers", name: "dti" } })).status).toBe(201);
    const refused = await define({ group: "customers", name: "dti", kind: "online", dtype: "boolean", expression: "ratio(debt, income) > 0.5" });
    expect(refused.status).toBe(409);
    expect(refused.json.error.message).toMatch(/^'customers\.dti' is read by model version\(s\) credit-store 2\.1\.0, which redefining it as boolean would break/);
    expect(await versionsOf("dti")).toEqual([{ version: 1, dtype: "numeric", status: "active" }]);
  });

  it("accepts a type change that still fits every reader, and any change to a feature nobody reads", async () => {
    // integer values are numbers to dti's expression and fit the model's numeric Income.
    const integer = await define({ group: "customers", name: "income", kind: "offline", dtype: "integer" });
    expect(integer.status).toBe(201);
    expect(integer.json).toMatchObject({ version: 2, dtype: "integer" });
    const dti = await call("POST", "/v1/features/get", { group: "customers", entity_id: "c2", features: ["dti", "income"] });
    expect(dti.status).toBe(200);
    expect(dti.json.values).toEqual({ dti: 0.125, income: 80 });
    expect((await define({ group: "customers", name: "income", kind: "offline", dtype: "numeric" })).status).toBe(201);

    const unread = await define({ group: "customers", name: "notes", kind: "offline", dtype: "categorical" });
    expect(unread.status).toBe(201);
    expect(await versionsOf("notes")).toEqual([
      { version: 2, dtype: "categorical", status: "active" },
      { version: 1, dtype: "numeric", status: "active" },
    ]);
  });
});
