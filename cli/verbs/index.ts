/**
 * The verb table: each verb a function of (config, positional args, flags). Add a capability's
 * verbs in its own file and list them here.
 */
import type { Config } from "../config.ts";
import { aliases, deployments, models, monitoring, promote, versions } from "./operate.ts";
import { register, type RegisterFlags } from "./register.ts";

export interface VerbContext {
  config: Config;
  args: string[];
  flags: Record<string, unknown>;
}
export type Verb = (ctx: VerbContext) => Promise<void>;

export const VERBS: Record<string, Verb> = {
  register: ({ config, args, flags }) => register(config, args[0], flags as RegisterFlags),
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

  register MODEL.onnx --data TRAIN.csv --label COLUMN --name N --version V [--alias A]
           [--holdout HOLDOUT.csv] [--environment E] [--positive-class C] [--categories F=a,b,c]
           [--integer F,G] [--bounds F=MIN:MAX] [--impute F=V] [--ignore COL] [--out FILE] [--dry-run]
  models                       models in the registry
  versions MODEL               versions with status, aliases and metrics
  aliases MODEL                aliases and the versions they point at
  promote MODEL VERSION [--alias champion] [--reason R]
  deployments [list] [--model M] [--state S]
  deployments create --body JSON|@file.json
  deployments status|history|validate|start|pause|resume|promote|rollback|abort ID [--reason R]
  monitoring summary|drift|performance MODEL [--window 5m|1h|24h|7d]
  monitoring alerts MODEL [--limit N]
  config                       where requests go and where the token came from

Config: flags, then EML_URL / EML_ADMIN_TOKEN, then a profile in $EML_CONFIG or
~/.config/eml/config.json ({"profiles":{"default":{"url":…,"token":…}}}), then
http://127.0.0.1:8787 with ADMIN_TOKEN from ./.dev.vars.`;
}
