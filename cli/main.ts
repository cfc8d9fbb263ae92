#!/usr/bin/env node
/**
 * `eml`: the edge-ml-runtime command line (npm run cli -- <verb>, or the `eml` bin). Parses flags,
 * loads the connection config (cli/config.ts) and runs a verb (cli/verbs/). An error the API
 * answered is printed as the API stated it; every failure exits non-zero.
 */
import { parseArgs } from "node:util";
import { ApiFailure } from "./api.ts";
import { loadConfig } from "./config.ts";
import { VERBS, usage } from "./verbs/index.ts";

const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  profile: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  quiet: { type: "boolean", short: "q" },
  // register
  data: { type: "string" },
  holdout: { type: "string" },
  label: { type: "string" },
  name: { type: "string" },
  version: { type: "string" },
  alias: { type: "string", multiple: true },
  environment: { type: "string" },
  description: { type: "string" },
  "positive-class": { type: "string" },
  categories: { type: "string", multiple: true },
  integer: { type: "string", multiple: true },
  bounds: { type: "string", multiple: true },
  impute: { type: "string", multiple: true },
  ignore: { type: "string", multiple: true },
  "dry-run": { type: "boolean" },
  out: { type: "string" },
  actor: { type: "string" },
  // day-to-day
  reason: { type: "string" },
  model: { type: "string" },
  state: { type: "string" },
  window: { type: "string" },
  limit: { type: "string" },
  body: { type: "string" },
  // features, batch, retraining
  group: { type: "string" },
  features: { type: "string", multiple: true },
  "as-of": { type: "string" },
  "entity-column": { type: "string" },
  "time-column": { type: "string" },
  "max-rejected": { type: "string" },
  wait: { type: "boolean" },
  "output-key": { type: "string" },
  "output-format": { type: "string" },
  "chunk-size": { type: "string" },
  detach: { type: "boolean" },
} as const;

export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    console.error(`eml: ${(error as Error).message}\n\n${usage()}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const [verb, ...rest] = positionals;
  if (!verb || values.help) {
    console.log(usage());
    return verb || values.help ? 0 : 2;
  }
  const run = VERBS[verb];
  if (!run) {
    console.error(`eml: unknown verb '${verb}'\n\n${usage()}`);
    return 2;
  }
  try {
    const config = loadConfig(values);
    await run({ config, args: rest, flags: values as Record<string, unknown> });
    return 0;
  } catch (error) {
    if (error instanceof ApiFailure) console.error(error.describe());
    else console.error(`eml: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith("/eml")) {
  process.exitCode = await main(process.argv.slice(2));
}
