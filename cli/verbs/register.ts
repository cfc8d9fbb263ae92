/**
 * `eml register MODEL.onnx --data TRAIN.csv|.parquet|.ndjson --label COLUMN --name N --version V [--alias A]
 * [--holdout HOLDOUT.csv] [--dry-run] [--out FILE]`: infers the manifest (cli/register/infer.ts),
 * prints every guess, writes the manifest for review, and (unless --dry-run) uploads manifest and
 * artifact to POST /admin/models/:name/versions with a progress bar (cli/progress.ts; --quiet: none).
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { formatJson } from "../../scripts/lib/json.ts";
import { Api } from "../api.ts";
import type { Config } from "../config.ts";
import { readTable } from "../register/data.ts";
import { inferManifest, type RegisterOptions } from "../register/infer.ts";
import { ProgressBar } from "../progress.ts";

export interface RegisterFlags {
  data?: string;
  holdout?: string;
  label?: string;
  name?: string;
  version?: string;
  alias?: string[];
  environment?: string;
  description?: string;
  "positive-class"?: string;
  categories?: string[];
  integer?: string[];
  bounds?: string[];
  impute?: string[];
  ignore?: string[];
  "dry-run"?: boolean;
  out?: string;
  actor?: string;
  quiet?: boolean;
}

const list = (v: string[] | undefined) => (v ?? []).flatMap((s) => s.split(",")).map((s) => s.trim()).filter(Boolean);

function keyed(values: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values ?? []) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new Error(`--${flag} takes FEATURE=VALUE, got '${v}'`);
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** Parses the flags into inference options; throws naming the flag that is wrong or missing. */
export async function registerOptions(model: string | undefined, flags: RegisterFlags): Promise<RegisterOptions> {
  if (!model) throw new Error("register needs the ONNX file: eml register MODEL.onnx --data TRAIN.csv --label COLUMN --name N --version V");
  for (const f of ["data", "label", "name", "version"] as const) if (!flags[f]) throw new Error(`register needs --${f}`);
  const env = flags.environment;
  if (env !== undefined && !["development", "staging", "production"].includes(env)) throw new Error(`--environment must be development, staging or production`);
  const bounds: Record<string, { min?: number; max?: number }> = {};
  for (const [k, v] of Object.entries(keyed(flags.bounds, "bounds"))) {
    const m = /^(-?[\d.e+-]*):(-?[\d.e+-]*)$/.exec(v);
    if (!m) throw new Error(`--bounds takes FEATURE=MIN:MAX (either side may be empty), got '${k}=${v}'`);
    bounds[k] = { ...(m[1] ? { min: Number(m[1]) } : {}), ...(m[2] ? { max: Number(m[2]) } : {}) };
  }
  return {
    onnx: new Uint8Array(readFileSync(model)),
    data: await readTable(flags.data!),
    holdout: flags.holdout ? await readTable(flags.holdout) : undefined,
    label: flags.label!,
    name: flags.name!,
    version: flags.version!,
    environment: env as RegisterOptions["environment"],
    description: flags.description,
    positiveClass: flags["positive-class"],
    categories: Object.fromEntries(Object.entries(keyed(flags.categories, "categories")).map(([k, v]) => [k, v.split(",")])),
    integer: list(flags.integer),
    bounds,
    impute: keyed(flags.impute, "impute"),
    ignore: list(flags.ignore),
  };
}

export async function register(config: Config, model: string | undefined, flags: RegisterFlags, log: (s: string) => void = console.log): Promise<void> {
  const opts = await registerOptions(model, flags);
  const { manifest, notes } = await inferManifest(opts);
  log(`Inferred from ${path.basename(model!)} and ${path.basename(flags.data!)}:`);
  for (const n of notes) log(`  - ${n}`);
  const out = flags.out ?? `${model!.replace(/\.onnx$/i, "")}.manifest.inferred.json`;
  writeFileSync(out, formatJson(manifest));
  log(`manifest written to ${out} (review it; register with it by dropping --dry-run)`);
  if (flags["dry-run"]) return;
  const api = new Api(config);
  const form = new FormData();
  form.set("manifest", JSON.stringify(manifest));
  form.set("artifact", new Blob([readFileSync(model!)]), path.basename(model!));
  for (const a of list(flags.alias)) form.append("alias", a);
  // The multipart body as bytes (the artifact is at most MAX_ARTIFACT_BYTES), so its length is
  // known and the bar can count it as the connection takes it.
  const encoded = new Request("http://multipart.invalid/", { method: "POST", body: form });
  const body = await encoded.blob();
  const bar = new ProgressBar(body.size, { label: `uploading to ${config.url}`, quiet: flags.quiet });
  try {
    await api.sendBlob("POST", `/admin/models/${encodeURIComponent(manifest.name)}/versions`, body, encoded.headers.get("content-type")!, (sent) => bar.update(sent), { "x-actor": flags.actor ?? "eml-cli" });
  } finally {
    bar.finish();
  }
  log(`registered ${manifest.name}@${manifest.version}${list(flags.alias).length ? ` as ${list(flags.alias).join(", ")}` : ""}`);
}
