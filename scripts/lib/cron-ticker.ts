/**
 * Cron Triggers for `npm start`: wrangler dev does not fire them, so this calls the Worker's
 * scheduled handler the way production does, at the start of every minute, for each cron of
 * wrangler.toml's [triggers] that matches that minute (UTC), through wrangler's
 * /cdn-cgi/handler/scheduled route (with the cron expression and the scheduled time). Canaries
 * advance, SLAs and alerts evaluate, and the 06:00 UTC drift reports are written locally.
 *
 * The matcher covers the five standard fields with "*", numbers, lists, ranges and steps (all this
 * project's crons); names (MON, JAN) and "L"/"W" are not needed here.
 */
import { readFileSync } from "node:fs";
import path from "node:path";

/** The crons of wrangler.toml's [triggers] table. */
export function configuredCrons(root: string): string[] {
  const toml = readFileSync(path.join(root, "wrangler.toml"), "utf8");
  const table = /^\[triggers\][^[]*?^crons\s*=\s*\[([^\]]*)\]/ms.exec(toml);
  if (!table) return [];
  return [...table[1].matchAll(/"([^"]+)"/g)].map((m) => m[1]);
}

function fieldMatches(field: string, value: number, min: number, max: number): boolean {
  return field.split(",").some((part) => {
    const [range, stepText] = part.split("/");
    const step = stepText ? Number(stepText) : 1;
    let lo: number;
    let hi: number;
    if (range === "*") [lo, hi] = [min, max];
    else if (range.includes("-")) [lo, hi] = range.split("-").map(Number) as [number, number];
    else [lo, hi] = [Number(range), stepText ? max : Number(range)];
    return value >= lo && value <= hi && (value - lo) % step === 0;
  });
}

/** Whether a five-field cron expression fires at this minute (UTC). */
export function cronMatches(cron: string, at: Date): boolean {
  const f = cron.trim().split(/\s+/);
  if (f.length !== 5) throw new Error(`cron '${cron}': expected 5 fields`);
  const dow = at.getUTCDay();
  const domOk = fieldMatches(f[2], at.getUTCDate(), 1, 31);
  const dowOk = fieldMatches(f[4], dow, 0, 7) || (dow === 0 && fieldMatches(f[4], 7, 0, 7));
  // Standard cron: when both day fields are restricted, either may match.
  const days = f[2] !== "*" && f[4] !== "*" ? domOk || dowOk : domOk && dowOk;
  return fieldMatches(f[0], at.getUTCMinutes(), 0, 59) && fieldMatches(f[1], at.getUTCHours(), 0, 23) && fieldMatches(f[3], at.getUTCMonth() + 1, 1, 12) && days;
}

/**
 * Fires the scheduled handler for `cron` at `scheduledTime` (ms) through wrangler dev. Miniflare
 * hands `time` to the handler as `controller.scheduledTime` unchanged, so it is milliseconds (a
 * value in seconds reads as January 1970 and every canary step looks unfinished).
 */
export async function fireScheduled(url: string, cron: string, scheduledTime: number): Promise<Response> {
  const q = new URLSearchParams({ cron, time: String(scheduledTime) });
  return fetch(`${url}/cdn-cgi/handler/scheduled?${q}`);
}

/** Starts ticking at each minute boundary; returns a stop function. */
export function startCronTicker(url: string, crons: string[], log: (s: string) => void = console.log): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    const now = Date.now();
    timer = setTimeout(tick, 60_000 - (now % 60_000) + 50);
  };
  const tick = async () => {
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    for (const cron of crons.filter((c) => cronMatches(c, new Date(minute)))) {
      try {
        const res = await fireScheduled(url, cron, minute);
        const text = await res.text();
        if (!res.ok) log(`cron "${cron}" at ${new Date(minute).toISOString()}: scheduled handler answered ${res.status} ${text.slice(0, 200)}`);
      } catch (error) {
        log(`cron "${cron}": could not reach the scheduled handler (${(error as Error).message})`);
      }
    }
    schedule();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
