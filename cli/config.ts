/**
 * Where the CLI sends requests and with which token: flags (--url, --token), then the environment
 * (EML_URL, EML_ADMIN_TOKEN), then a profile file (--profile NAME, default "default", from
 * $EML_CONFIG or ~/.config/eml/config.json: {"profiles": {"default": {"url": …, "token": …}}}),
 * then, for a local checkout, http://127.0.0.1:8787 with ADMIN_TOKEN from ./.dev.vars.
 */
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import path from "node:path";

export interface Config {
  url: string;
  token?: string;
  /** Where each value came from, for `eml config`. */
  source: { url: string; token: string };
}

export function loadConfig(flags: { url?: string; token?: string; profile?: string }, env: NodeJS.ProcessEnv = process.env): Config {
  const file = env.EML_CONFIG ?? path.join(homedir(), ".config", "eml", "config.json");
  let profile: { url?: string; token?: string } = {};
  const name = flags.profile ?? env.EML_PROFILE ?? "default";
  if (existsSync(file)) {
    const parsed = JSON.parse(readFileSync(file, "utf8")) as { profiles?: Record<string, { url?: string; token?: string }> };
    profile = parsed.profiles?.[name] ?? {};
    if (flags.profile && !parsed.profiles?.[name]) throw new Error(`profile '${name}' not found in ${file}`);
  } else if (flags.profile) throw new Error(`profile '${name}' requested but ${file} does not exist`);
  let devToken: string | undefined;
  const devVars = path.join(process.cwd(), ".dev.vars");
  if (existsSync(devVars)) devToken = /^\s*ADMIN_TOKEN\s*=\s*"?([^"\n]*)"?\s*$/m.exec(readFileSync(devVars, "utf8"))?.[1];
  const pick = <T>(...c: [T | undefined, string][]): [T | undefined, string] => c.find(([v]) => v !== undefined && v !== "") ?? [undefined, "unset"];
  const [url, urlSource] = pick<string>([flags.url, "--url"], [env.EML_URL, "EML_URL"], [profile.url, `profile ${name} (${file})`], ["http://127.0.0.1:8787", "local default"]);
  const [token, tokenSource] = pick<string>([flags.token, "--token"], [env.EML_ADMIN_TOKEN, "EML_ADMIN_TOKEN"], [profile.token, `profile ${name} (${file})`], [devToken, ".dev.vars"]);
  return { url: url!.replace(/\/+$/, ""), token, source: { url: urlSource, token: tokenSource } };
}
