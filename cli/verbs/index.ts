/**
 * The verb table: each verb a function of (config, positional args, flags). Add a capability's
 * verbs in its own file and list them here.
 */
import type { Config } from "../config.ts";
import { batch, type BatchFlags } from "./batch.ts";
import { features, type FeatureFlags } from "./features.ts";
import { aliases, deployments, models, monitoring, promote, versions } from "./operate.ts";
import { register, type RegisterFlags } from "./register.ts";
import { retraining, type RetrainingFlags } from "./retraining.ts";

export interface VerbContext {
  config: Config;
  args: string[];
  flags: Record<string, unknown>;
}
export type Verb = (ctx: VerbContext) => Promise<void>;

export const VERBS: Record<string, Verb> = {
  register: ({ config, args, flags }) => register(config, args[0], flags as RegisterFlags),
  features: ({ config, args, flags }) => features(config, args[0], args.slice(1), flags as FeatureFlags),
  batch: ({ config, args, flags }) => batch(config, args[0], args.slice(1), flags as BatchFlags),
  retraining: ({ config, args, flags }) => retraining(config, args, flags as RetrainingFlags),
  models,
  versions,
  aliases,
  promote,
  deployments,
  monitoring,
  config: async ({ config }) => {
    console.log(`url   ${config.url}   (${config.source.url})`);
    console.log(`token ${config.token ? "set" : "unset"}   (${config.source.token})`);
  },
};

export function usage(): string {
  return `usage: eml <verb> [args] [--url URL] [--token TOKEN] [--profile NAME] [--json]

  register MODEL.onnx --data TRAIN.csv|.parquet|.ndjson --label COLUMN --name N --version V [--alias A]
           [--holdout HOLDOUT.csv|.parquet|.ndjson] [--quiet] [--environment E] [--positive-class C] [--categories F=a,b,c]
           [--integer F,G] [--bounds F=MIN:MAX] [--impute F=V] [--ignore COL] [--out FILE] [--dry-run]
  features define FILE.json | --body JSON      define a feature (a changed definition is a new version)
  features list --group G                      every version of every feature of a group
  features retire GROUP NAME [--version N]     retire one version, or all of them
  features load FILE.csv|.ndjson --group G --entity-column C [--time-column T]
           [--max-rejected N] [--wait]         upload an offline load; --wait follows it to the end
  features loads --group G                     recent loads
  features get ENTITY --group G --features a,b [--as-of TIME]
  batch submit FILE.csv|.ndjson --model M [--version V | --alias A] [--output-key K]
           [--output-format csv|ndjson] [--chunk-size N] [--out LOCAL] [--detach]
                                               upload, follow (rows done, rows/s, ETA), download
  batch status ID | batch cancel ID | batch list [--limit N]
  retraining config MODEL [FILE.json | --body JSON]   show (secret redacted) or set the trainer configuration
  retraining triggers list MODEL | define MODEL FILE.json | delete MODEL ID | fire MODEL --reason R
  retraining jobs list MODEL [--state S] [--limit N] | jobs status ID | jobs cancel ID [--reason R]
  retraining report ID                         the champion/challenger comparison
  models                       models in the registry
  versions MODEL               versions with status, aliases and metrics
  versions archive MODEL VERSION [--reason R]
  versions restore MODEL VERSION [--alias A] [--reason R]
                               bring an archived version back, optionally as alias A (409 if its artifact is gone)
  aliases MODEL                aliases and the versions they point at
  promote MODEL VERSION [--alias champion] [--reason R]
  deployments [list] [--model M] [--state S]
  deployments create --body JSON|@file.json
  deployments status|history|validate|start|pause|resume|promote|rollback|abort ID [--reason R]
  monitoring summary|drift|performance MODEL [--window 5m|1h|24h|7d]
  monitoring alerts MODEL [--limit N]
  config                       where requests go and where the token came from

--json prints the API's answer as JSON instead of a table; --quiet (-q) hides upload progress bars. API errors are printed as the API
states them and exit 1; bad arguments exit 1 (2 for unknown flags).

Config: flags, then EML_URL / EML_ADMIN_TOKEN, then a profile in $EML_CONFIG or
~/.config/eml/config.json ({"profiles":{"default":{"url":…,"token":…}}}), then
http://127.0.0.1:8787 with ADMIN_TOKEN from ./.dev.vars.`;
}
