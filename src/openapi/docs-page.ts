/**
 * The /docs page: one self-contained HTML file that fetches /openapi.json and lists every
 * operation by tag with its auth, parameters, request schema and example, and responses. No CDN or
 * third-party script (deployments may forbid them, and local runs have no internet); schemas are
 * shown as JSON, collapsed until opened.
 */
export function docsPage(): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge-ml-runtime API</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem 2rem;color:#1d2330}
h1{font-size:1.5rem}h2{margin-top:2rem;border-bottom:1px solid #ccd;text-transform:capitalize}
.op{border:1px solid #dde;border-radius:6px;margin:.6rem 0;padding:.5rem .8rem}
.m{display:inline-block;min-width:4.2rem;font-weight:700;text-transform:uppercase}
.get{color:#0b6}.post{color:#06c}.put{color:#a60}.delete{color:#c22}
code,pre{font:12px/1.4 ui-monospace,monospace}pre{background:#f5f6fa;padding:.5rem;overflow:auto;max-height:28rem}
.auth{float:right;font-size:12px;color:#556}summary{cursor:pointer;color:#334}
</style></head>
<body><h1>edge-ml-runtime API</h1>
<p>Generated from <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1). Manifest JSON Schema: <a href="/schemas/manifest.json">/schemas/manifest.json</a>.</p>
<div id="out">Loading…</div>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const json = (v) => "<pre>" + esc(JSON.stringify(v, null, 2)) + "</pre>";
const auth = (sec) => !sec || !sec.length ? "public" : sec.map((s) => Object.keys(s)[0] || "optional").join(" or ");
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const byTag = {};
  for (const [path, ops] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(ops)) (byTag[op.tags[0]] ??= []).push({ path, method, op });
  let html = "<p>" + esc(doc.info.description) + "</p>";
  for (const [tag, ops] of Object.entries(byTag)) {
    html += "<h2>" + esc(tag) + "</h2>";
    for (const { path, method, op } of ops) {
      html += '<div class="op"><span class="auth">' + esc(auth(op.security)) + '</span><span class="m ' + method + '">' + method + "</span><code>" + esc(path) + "</code> — " + esc(op.summary);
      if (op.description) html += "<p>" + esc(op.description) + "</p>";
      if (op.parameters) html += "<details><summary>parameters</summary>" + json(op.parameters) + "</details>";
      if (op.requestBody) for (const [ct, body] of Object.entries(op.requestBody.content)) {
        html += "<details><summary>request body (" + esc(ct) + ")</summary>" + json(body.schema) + "</details>";
        if (body.example !== undefined) html += "<details><summary>example</summary>" + json(body.example) + "</details>";
      }
      html += "<details><summary>responses: " + Object.keys(op.responses).join(", ") + "</summary>" + json(op.responses) + "</details></div>";
    }
  }
  document.getElementById("out").innerHTML = html;
}).catch((e) => { document.getElementById("out").textContent = "could not load /openapi.json: " + e; });
</script></body></html>`;
}
