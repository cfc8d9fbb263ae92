/**
 * The reference external trainer (the contract is in README "Retraining"): what a trainer does with
 * one job. Shared by the Node server (trainer/server.ts) and the end-to-end tests.
 *
 * 1. Verify the worker's signature on the job spec; answer 202 at once (the job id is the
 *    idempotency key: a second delivery of the same job is acknowledged, never trained twice).
 * 2. POST status "training"; download the training and out-of-time exports (gzip NDJSON, signed GETs).
 * 3. Encode rows with the champion's feature schema (dense input, one-hot categoricals, its
 *    missing-value policy), and choose by 5-fold cross-validated AUC among logistic regression
 *    (L2 strength searched over a grid) and gradient-boosted trees (two depths).
 * 4. Refit the winner on all training rows, export ONNX (scripts/onnx/builder.ts), build the
 *    manifest (champion schema, metrics on the OOT set, drift reference from the training rows),
 *    upload it, then POST complete (or complete with status "failed" and the error).
 *
 * Binary classifiers with a dense input (the form scripts/train-demo.ts writes) are supported.
 */
import { fitGbt, type GbtOptions } from "../scripts/lib/train-gbt.ts";
import { fitLogistic } from "../scripts/lib/train-lr.ts";
import { categoricalReference, numericReference, scoreReference } from "../scripts/lib/manifest.ts";
import { encodeDense, sigmoid, treeRawScore, type DenseColumn, type FeatureSpec, type RawRow } from "../scripts/lib/predict-reference.ts";
import { encodeModel, logisticGemmGraph, treeClassifierGraph } from "../scripts/onnx/builder.ts";
import { mulberry32, shuffle } from "../scripts/lib/prng.ts";
import { binaryMetrics } from "../src/stats/classification.ts";
import { sign, verify, SIGNATURE_HEADER } from "../src/retraining/signing.ts";

export type Http = (request: Request) => Promise<Response>;

interface JobSpec {
  job_id: string;
  model: string;
  candidate_version: string;
  champion: { version: string; task: string; feature_schema: { features: FeatureSpec[]; input: { kind: string; columns: DenseColumn[] }; output: { kind: string; classes: (number | string)[]; positiveClass?: number | string } } } | null;
  export: { train_url: string; oot_url: string };
  callbacks: { status_url: string; candidate_url: string; complete_url: string };
}

interface Row {
  features: RawRow;
  label: number | string;
}

const LAMBDAS = [0.01, 0.1, 1, 10, 100];
const GBT_GRID: GbtOptions[] = [
  { nTrees: 40, maxDepth: 2, learningRate: 0.2, lambda: 1, minChildWeight: 1, minSamplesLeaf: 10 },
  { nTrees: 40, maxDepth: 3, learningRate: 0.2, lambda: 1, minChildWeight: 1, minSamplesLeaf: 10 },
];
const FOLDS = 5;

export interface TrainerOptions {
  secret: string;
  /** How the trainer reaches the worker (global fetch in production). */
  http: Http;
  log?: (line: string) => void;
}

export function createTrainer(opts: TrainerOptions) {
  const seen = new Map<string, Promise<void>>();
  const log = opts.log ?? ((l: string) => console.log(l));

  async function signedFetch(method: string, url: string, body?: Uint8Array | string, contentType?: string): Promise<Response> {
    const headers: Record<string, string> = { [SIGNATURE_HEADER]: await sign(opts.secret, method, new URL(url).pathname, body) };
    if (contentType) headers["content-type"] = contentType;
    const res = await opts.http(new Request(url, { method, headers, body: body as BodyInit | undefined }));
    if (!res.ok) throw new Error(`${method} ${new URL(url).pathname} answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
    return res;
  }

  async function download(url: string): Promise<Row[]> {
    const res = await signedFetch("GET", url);
    const text = await new Response(res.body!.pipeThrough(new DecompressionStream("gzip"))).text();
    return text.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Row);
  }

  async function run(spec: JobSpec): Promise<void> {
    try {
      await signedFetch("POST", spec.callbacks.status_url, JSON.stringify({ status: "training" }), "application/json");
      const [train, oot] = await Promise.all([download(spec.export.train_url), download(spec.export.oot_url)]);
      const { manifest, onnx, metrics } = trainCandidate(spec, train, oot);
      const form = new FormData();
      form.set("manifest", JSON.stringify(manifest));
      form.set("artifact", new Blob([onnx as Uint8Array<ArrayBuffer>]), "model.onnx");
      const encoded = new Response(form);
      const body = new Uint8Array(await encoded.arrayBuffer());
      await signedFetch("POST", spec.callbacks.candidate_url, body, encoded.headers.get("content-type")!);
      await signedFetch("POST", spec.callbacks.complete_url, JSON.stringify({ status: "succeeded", metrics, detail: manifest.description }), "application/json");
      log(`job ${spec.job_id}: uploaded ${spec.model}@${spec.candidate_version} (${manifest.description})`);
    } catch (error) {
      log(`job ${spec.job_id}: failed: ${String(error)}`);
      await signedFetch("POST", spec.callbacks.complete_url, JSON.stringify({ status: "failed", error: String(error).slice(0, 3000) }), "application/json").catch((e) => log(`job ${spec.job_id}: could not report the failure: ${String(e)}`));
    }
  }

  /** The trainer's HTTP handler: POST (any path) with a signed job spec. */
  return async function handle(request: Request): Promise<Response> {
    if (request.method !== "POST") return Response.json({ error: "POST a job spec" }, { status: 405 });
    const body = await request.text();
    const why = await verify(opts.secret, request.headers.get(SIGNATURE_HEADER), "POST", new URL(request.url).pathname, body);
    if (why) return Response.json({ error: why }, { status: 401 });
    let spec: JobSpec;
    try {
      spec = JSON.parse(body) as JobSpec;
    } catch {
      return Response.json({ error: "body is not JSON" }, { status: 400 });
    }
    const key = request.headers.get("idempotency-key") ?? spec.job_id;
    if (seen.has(key)) return Response.json({ job_id: spec.job_id, accepted: true, duplicate: true }, { status: 202 });
    if (!spec.champion || spec.champion.feature_schema.input.kind !== "dense" || spec.champion.feature_schema.output.kind !== "classifier") {
      return Response.json({ error: "this trainer handles binary classifiers with a dense input" }, { status: 422 });
    }
    const work = run(spec);
    seen.set(key, work);
    return Response.json({ job_id: spec.job_id, accepted: true }, { status: 202 });
  };
}

function folds(n: number, k: number, seed: number): number[] {
  const order = shuffle(Array.from({ length: n }, (_, i) => i), mulberry32(seed));
  const fold = new Array<number>(n);
  order.forEach((idx, i) => (fold[idx] = i % k));
  return fold;
}

type Fitted = { kind: "lr"; lambda: number; weights: number[]; intercept: number } | { kind: "gbt"; opts: GbtOptions; baseScore: number; trees: ReturnType<typeof fitGbt>["trees"] };

function fit(kind: "lr" | "gbt", X: number[][], y: number[], standardize: boolean[], param: number | GbtOptions): Fitted {
  if (kind === "lr") {
    const f = fitLogistic(X, y, standardize, { lambda: param as number });
    return { kind, lambda: param as number, weights: f.weights.map(Math.fround), intercept: Math.fround(f.intercept) };
  }
  const f = fitGbt(X, y, param as GbtOptions);
  return { kind, opts: param as GbtOptions, baseScore: f.baseScore, trees: f.trees };
}

function predict(m: Fitted, x: number[]): number {
  if (m.kind === "lr") return sigmoid(x.reduce((s, v, i) => s + v * m.weights[i], m.intercept));
  return sigmoid(treeRawScore(m.trees, m.baseScore, x));
}

export function trainCandidate(spec: JobSpec, train: Row[], oot: Row[]) {
  const schema = spec.champion!.feature_schema;
  const positive = String(schema.output.positiveClass ?? schema.output.classes[1]);
  const columns = schema.input.columns;
  const encode = (rows: Row[]) => rows.map((r) => encodeDense(schema.features, columns, r.features));
  const X = encode(train);
  const y = train.map((r) => (String(r.label) === positive ? 1 : 0));
  if (y.length < 50 || !y.some((v) => v) || y.every((v) => v)) throw new Error(`training set too small or one class only (${y.length} rows)`);
  const standardize = columns.map((c) => c.oneHot === undefined);
  const fold = folds(X.length, FOLDS, 7);
  const candidates: { kind: "lr" | "gbt"; param: number | GbtOptions; label: string }[] = [
    ...LAMBDAS.map((l) => ({ kind: "lr" as const, param: l, label: `logistic regression (lambda ${l})` })),
    ...GBT_GRID.map((g) => ({ kind: "gbt" as const, param: g, label: `gradient-boosted trees (${g.nTrees} trees, depth ${g.maxDepth})` })),
  ];
  const cv = candidates.map((c) => {
    const scores = new Array<number>(X.length);
    for (let k = 0; k < FOLDS; k++) {
      const trIdx = X.map((_, i) => i).filter((i) => fold[i] !== k);
      const m = fit(c.kind, trIdx.map((i) => X[i]), trIdx.map((i) => y[i]), standardize, c.param);
      X.forEach((x, i) => fold[i] === k && (scores[i] = predict(m, x)));
    }
    return { ...c, auc: binaryMetrics(y, scores).auc };
  });
  const best = cv.reduce((a, b) => (b.auc > a.auc ? b : a));
  const model = fit(best.kind, X, y, standardize, best.param);
  const trainScores = X.map((x) => predict(model, x));
  const Xo = encode(oot);
  const yo = oot.map((r) => (String(r.label) === positive ? 1 : 0));
  const ootMetrics = yo.some((v) => v) && !yo.every((v) => v) ? binaryMetrics(yo, Xo.map((x) => predict(model, x))) : null;
  const metrics: Record<string, number> = { ...(ootMetrics ?? binaryMetrics(y, trainScores)), cv_auc: best.auc };
  const graph = model.kind === "lr" ? logisticGemmGraph({ weights: model.weights, intercept: model.intercept }) : treeClassifierGraph({ trees: model.trees, classes: { int64: [0, 1] }, baseScore: model.baseScore, postTransform: "LOGISTIC" }, columns.length);
  const description = `${best.label}, chosen by ${FOLDS}-fold CV AUC ${best.auc.toFixed(4)} over ${cv.length} candidates; ${train.length} training rows (job ${spec.job_id})`;
  const onnx = encodeModel(graph, { docString: description, metadata: { name: spec.model, version: spec.candidate_version } });
  const reference = {
    features: Object.fromEntries(
      schema.features.map((f) => [
        f.name,
        f.type === "categorical" ? categoricalReference(train.map((r) => (r.features[f.name] ?? null) as string | null), f.categories!) : numericReference(train.map((r) => (typeof r.features[f.name] === "number" ? (r.features[f.name] as number) : Number.NaN))),
      ]),
    ),
    score: scoreReference(trainScores),
  };
  const manifest = {
    name: spec.model,
    version: spec.candidate_version,
    task: "binary_classification",
    description,
    environment: "staging",
    metrics,
    featureSchema: schema,
    reference,
  };
  return { manifest, onnx, metrics };
}
