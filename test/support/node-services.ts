/**
 * TEST-ONLY services that run in Node beside workerd, exposed to tests as service bindings in
 * vitest.config.ts (never in wrangler.toml, so they cannot exist in a deployed Worker):
 *  - TEST_WEBHOOK_SINK: records webhook deliveries (any URL); paths containing "/fail" answer 503.
 *    `GET http://sink/_received?prefix=/p` lists what was received under a path prefix.
 *  - TEST_PROMTOOL: runs `promtool check metrics` (Debian package `prometheus`) on the posted text.
 *  - TEST_BROWSER: opens a page in headless Chromium (Debian package `chromium`, via
 *    playwright-core), serving it the responses the test captured from the worker, waits for
 *    `body[data-ready=true]`, screenshots it and reports console errors, drawn chart series and
 *    per-chart pixel counts of given colours (decoded from the PNG screenshot).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { inflateSync } from "node:zlib";

const received: { path: string; headers: Record<string, string>; body: string; at: number }[] = [];

export async function webhookSink(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/_received") {
    const prefix = url.searchParams.get("prefix") ?? "/";
    return Response.json(received.filter((r) => r.path.startsWith(prefix)));
  }
  const entry = { path: url.pathname, headers: Object.fromEntries(request.headers), body: await request.text(), at: Date.now() };
  if (url.pathname.includes("/fail")) return new Response("receiver down", { status: 503 });
  received.push(entry);
  return new Response("ok");
}

export async function promtool(request: Request): Promise<Response> {
  const text = await request.text();
  const bin = ["/usr/bin/promtool", "/usr/local/bin/promtool"].find((p) => existsSync(p));
  if (!bin) return Response.json({ code: -1, output: "promtool not installed (apt-get install -y prometheus)" });
  return new Promise((resolve) => {
    const child = spawn(bin, ["check", "metrics"], { stdio: ["pipe", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (code) => resolve(Response.json({ code, output })));
    child.stdin.end(text);
  });
}

/** Minimal PNG decoder (8-bit RGB/RGBA, non-interlaced: what Chromium writes). */
function decodePng(buf: Buffer): { width: number; height: number; channels: number; pixels: Uint8Array } {
  let pos = 8;
  let width = 0;
  let height = 0;
  let channels = 4;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString("ascii", pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === "IHDR") {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      channels = data[9] === 6 ? 4 : 3;
      if (data[8] !== 8 || data[12] !== 0) throw new Error("unsupported PNG");
    } else if (type === "IDAT") idat.push(data);
    pos += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const pixels = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const v = raw[y * (stride + 1) + 1 + x];
      const a = x >= channels ? pixels[y * stride + x - channels] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const c = x >= channels && y > 0 ? pixels[(y - 1) * stride + x - channels] : 0;
      let p = v;
      if (filter === 1) p = v + a;
      else if (filter === 2) p = v + b;
      else if (filter === 3) p = v + ((a + b) >> 1);
      else if (filter === 4) {
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        p = v + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      pixels[y * stride + x] = p & 0xff;
    }
  }
  return { width, height, channels, pixels };
}

function countColor(png: ReturnType<typeof decodePng>, hex: string, tolerance = 40): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
  let n = 0;
  for (let i = 0; i < png.pixels.length; i += png.channels) {
    if (Math.abs(png.pixels[i] - r) + Math.abs(png.pixels[i + 1] - g) + Math.abs(png.pixels[i + 2] - b) <= tolerance) n++;
  }
  return n;
}

interface BrowserRequest {
  path: string;
  responses: Record<string, { status: number; contentType: string; body: string }>;
  charts: string[];
  colors: string[];
}

export async function browser(request: Request): Promise<Response> {
  const job = (await request.json()) as BrowserRequest;
  const executablePath = process.env.CHROMIUM_PATH ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
  if (!executablePath) return Response.json({ error: "chromium not installed (apt-get install -y chromium)" }, { status: 500 });
  const { chromium } = await import("playwright-core");
  const b = await chromium.launch({ executablePath, args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"] });
  try {
    const page = await b.newPage({ viewport: { width: 1400, height: 1100 } });
    const errors: string[] = [];
    page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.route("**/*", (route) => {
      const u = new URL(route.request().url());
      const r = job.responses[u.pathname + u.search] ?? job.responses[u.pathname];
      return r ? route.fulfill({ status: r.status, contentType: r.contentType, body: r.body }) : route.fulfill({ status: 404, body: "not captured" });
    });
    await page.goto(`http://worker.test${job.path}`);
    await page.waitForSelector("body[data-ready=true]", { timeout: 15_000 });
    const dir = path.join(tmpdir(), "edge-ml-screenshots");
    mkdirSync(dir, { recursive: true });
    const full = await page.screenshot({ fullPage: true });
    const screenshot = path.join(dir, "dashboard.png");
    writeFileSync(screenshot, full);
    const charts: Record<string, { drawn: number; series: number; pixels: Record<string, number> }> = {};
    for (const id of job.charts) {
      const loc = page.locator(`#${id}`);
      const png = decodePng(await loc.screenshot());
      charts[id] = {
        drawn: Number(await loc.getAttribute("data-drawn")),
        series: await page.locator(`#${id} .series`).count(),
        pixels: Object.fromEntries(job.colors.map((c) => [c, countColor(png, c)])),
      };
    }
    const text = await page.locator("main").innerText();
    const fullPng = decodePng(full);
    return Response.json({ errors, charts, text, screenshot, width: fullPng.width, height: fullPng.height, title: await page.title() });
  } finally {
    await b.close();
  }
}
