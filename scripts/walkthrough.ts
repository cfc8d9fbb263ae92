/**
 * `npm run walkthrough`: runs the README's examples in order against a fresh local server, as a
 * reader would paste them, and checks each answer. Run by .ci/run.
 *
 * It starts what `npm start` starts (migrations, wrangler dev, demo models, the per-minute Cron
 * Triggers) on fresh state in a temporary directory (PORT, default 8808; README examples say
 * 8787, replaced by the port used), takes every ```sh block from "## Calling it" up to the next
 * top-level section, splits them into commands (quotes and line continuations respected), and runs
 * them in ONE bash, so variables set by one example (U, ADMIN, ROW, J, ID) serve the next.
 *
 * Each command's expected HTTP status is 2xx, unless the comment on its own line starts with
 * another status ("# 409: …") or a following "# -> 422 …" line says so; a command whose curl cannot connect, or a non-zero exit, fails. Commands are
 * printed with their status. Lines starting with `open` (a browser) are skipped. At the end the
 * server must still serve a prediction from the champion and readiness: the walkthrough leaves it
 * usable.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { configuredCrons, startCronTicker } from "./lib/cron-ticker.ts";
import { applyMigrations, ensureDevVars, registerDemoModels, ROOT, startDevServer } from "./lib/dev-server.ts";

interface Command {
  text: string;
  comment: string;
  expect: (status: number) => boolean;
  expectText: string;
}

/** Splits shell text into commands: newlines end a command outside quotes and continuations; comments are kept apart. */
export function splitCommands(block: string): { text: string; comment: string }[] {
  const out: { text: string; comment: string }[] = [];
  let text = "";
  let comment = "";
  let quote: "'" | '"' | null = null;
  let depth = 0; // $( … ) nesting
  let pending = ""; // comment lines above a command: prose, not expectations
  for (let i = 0; i < block.length; i++) {
    const ch = block[i];
    if (quote) {
      text += ch;
      if (ch === "\\" && quote === '"') text += block[++i] ?? "";
      else if (ch === quote) quote = null;
      continue;
    }
    if (ch === "'" || ch === '"') {
      quote = ch;
      text += ch;
    } else if (ch === "\\" && block[i + 1] === "\n") {
      text += " ";
      i++;
    } else if (ch === "#" && (text === "" || /\s$/.test(text))) {
      const end = block.indexOf("\n", i);
      comment += (comment ? " " : "") + block.slice(i + 1, end < 0 ? undefined : end).trim();
      i = (end < 0 ? block.length : end) - 1;
    } else if (ch === "\n" && depth === 0) {
      if (text.trim()) {
        out.push({ text: text.trim(), comment });
        pending = "";
      } else if (comment.startsWith("->") && out.length) out[out.length - 1].comment += ` ${comment}`;
      else if (comment) pending += ` ${comment}`;
      text = "";
      comment = "";
    } else {
      if (ch === "(" && block[i - 1] === "$") depth++;
      if (ch === ")" && depth > 0) depth--;
      text += ch;
    }
  }
  if (text.trim()) out.push({ text: text.trim(), comment });
  return out;
}

export function readmeCommands(readme: string): Command[] {
  const start = readme.indexOf("\n## Calling it");
  const rest = readme.slice(start + 1);
  const end = rest.search(/\n## (?!Calling it)/);
  const section = rest.slice(0, end < 0 ? undefined : end);
  const blocks = [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  return blocks
    .flatMap(splitCommands)
    .filter((c) => !/^open\s/.test(c.text))
    .map((c) => {
      const code = /(?:^|->\s*)([45]\d\d)\b/.exec(c.comment)?.[1];
      return code
        ? { ...c, expect: (s: number) => s === Number(code), expectText: code }
        : { ...c, expect: (s: number) => s >= 200 && s < 300, expectText: "2xx" };
    });
}

/** fetch, asking again once when the local proxy closed a kept-alive connection before answering. */
async function call(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch {
    return fetch(url, init);
  }
}

async function main() {
  const port = Number(process.env.PORT ?? 8808);
  const state = mkdtempSync(path.join(tmpdir(), "eml-walkthrough-"));
  const vars = ensureDevVars();
  applyMigrations(state);
  const server = await startDevServer({ port, persistTo: state, quiet: true });
  const stopCron = startCronTicker(server.url, configuredCrons(ROOT));
  let failures = 0;
  try {
    await registerDemoModels(server.url, vars.ADMIN_TOKEN);
    const commands = readmeCommands(readFileSync(path.join(ROOT, "README.md"), "utf8"));
    const statusFile = path.join(state, "status");
    // curl records the status of its last HTTP answer (0: no answer); each command is followed by a marker line.
    let script = `set -u\ncd ${JSON.stringify(ROOT)}\nexport STATUS_FILE=${JSON.stringify(statusFile)}\n`;
    script += `curl() { local code rc; code=$(command curl -sS -o "$STATUS_FILE.body" -w '%{http_code}' "$@"); rc=$?; echo "$code" > "$STATUS_FILE"; cat "$STATUS_FILE.body" 2>/dev/null; rm -f "$STATUS_FILE.body"; return $rc; }\n`;
    commands.forEach((c, i) => {
      const text = c.text.replaceAll("http://127.0.0.1:8787", server.url);
      script += `echo 0 > "$STATUS_FILE"\n${text}\nrc=$?\nprintf '\\n@@%d %s %s\\n' ${i} "$rc" "$(cat "$STATUS_FILE")"\n`;
    });
    const scriptFile = path.join(state, "walkthrough.sh");
    writeFileSync(scriptFile, script);
    const run = spawnSync("bash", [scriptFile], { encoding: "utf8", maxBuffer: 64 * 1024 * 1024 });
    const outputs = run.stdout.split(/\n@@(\d+) (\d+) (\d+)\n/);
    // outputs: [body0, idx, rc, status, body1, idx, rc, status, …]
    let body = outputs[0];
    for (let k = 1; k + 2 < outputs.length; k += 4) {
      const i = Number(outputs[k]);
      const rc = Number(outputs[k + 1]);
      const status = Number(outputs[k + 2]);
      const c = commands[i];
      const isHttp = /\bcurl\b/.test(c.text) && !/^\w+\(\)\s*\{/.test(c.text);
      const ok = rc === 0 && (!isHttp || c.expect(status));
      if (!ok) failures++;
      const shown = c.text.length > 150 ? `${c.text.slice(0, 147)}...` : c.text;
      console.log(`${ok ? "ok  " : "FAIL"} ${isHttp ? String(status).padEnd(4) : "    "}${shown}${ok ? "" : `\n       expected ${c.expectText}, exit ${rc}; answer: ${body.trim().slice(0, 400)}`}`);
      body = outputs[k + 3] ?? "";
    }
    if (run.stderr.trim()) console.log(`stderr:\n${run.stderr.trim().slice(0, 2000)}`);
    // The Cron Triggers fire as in production: a canary started now gets the cron's verdict within a minute.
    const admin = { authorization: `Bearer ${vars.ADMIN_TOKEN}`, "content-type": "application/json" };
    const created = await (await call(`${server.url}/admin/deployments`, { method: "POST", headers: admin, body: JSON.stringify({ model: "credit-risk", strategy: "canary", version: "1.1.0", analysis: { step_minutes: 0 }, reason: "walkthrough cron check" }) })).json() as { deployment: { id: string } };
    const id = created.deployment.id;
    await call(`${server.url}/admin/deployments/${id}/validate`, { method: "POST", headers: admin, body: "{}" });
    await call(`${server.url}/admin/deployments/${id}/start`, { method: "POST", headers: admin, body: "{}" });
    const deadline = Date.now() + 90_000;
    let cronEvent: { action: string; reason: string } | undefined;
    while (!cronEvent && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 2000));
      try {
        const history = await (await call(`${server.url}/admin/deployments/${id}/history`, { headers: admin })).json() as { events: { actor: string; action: string; reason: string }[] };
        cronEvent = history.events.find((e) => e.actor === "cron");
      } catch {
        /* a kept-alive connection the local proxy closed: ask again */
      }
    }
    await call(`${server.url}/admin/deployments/${id}/abort`, { method: "POST", headers: admin, body: JSON.stringify({ reason: "walkthrough done" }) });
    console.log(`${cronEvent ? "ok  " : "FAIL"} Cron Triggers under npm start: ${cronEvent ? `the canary's history has the cron's "${cronEvent.action}" (${cronEvent.reason})` : "no cron event in 90 s"}`);
    if (!cronEvent) failures++;
    // Still usable: readiness and a champion prediction.
    const ready = await call(`${server.url}/ready`);
    const predict = await call(`${server.url}/v1/models/credit-risk/predict`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ features: { Seniority: 9, Home: "rent", Time: 60, Age: 30, Marital: "married", Records: "no", Job: "freelance", Expenses: 73, Income: 129, Assets: 0, Debt: 0, Amount: 800, Price: 846 } }),
    });
    const usable = ready.status === 200 && predict.status === 200;
    console.log(`${usable ? "ok  " : "FAIL"} after the walkthrough: /ready ${ready.status}, champion predict ${predict.status}`);
    if (!usable) failures++;
    console.log(`\n${commands.length} README commands, ${failures} failure(s)`);
  } finally {
    stopCron();
    await server.stop();
    rmSync(state, { recursive: true, force: true });
  }
  process.exit(failures ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
