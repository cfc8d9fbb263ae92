/**
 * The CLI's HTTP client: admin bearer token on every call, JSON in and out. An error answer is
 * raised as ApiFailure carrying the API's own words (status, code, message, field issues), which
 * main.ts prints as they are and turns into a non-zero exit code.
 */
import { createReadStream, statSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Config } from "./config.ts";
import { countingStream } from "./progress.ts";

export class ApiFailure extends Error {
  readonly status: number;
  readonly body: unknown;
  constructor(status: number, body: unknown) {
    super(`HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  /** The API's error as it stated it: code, message and each issue's path. */
  describe(): string {
    const b = this.body as { error?: { code?: string; message?: string; details?: { path: string; message: string }[] } } | string;
    if (typeof b === "string") return `HTTP ${this.status}: ${b.slice(0, 2000)}`;
    const e = b?.error;
    if (!e) return `HTTP ${this.status}: ${JSON.stringify(b)}`;
    const lines = [`HTTP ${this.status} ${e.code ?? ""}: ${e.message ?? ""}`];
    for (const i of e.details ?? []) lines.push(`  ${i.path}: ${i.message}`);
    return lines.join("\n");
  }
}

export class Api {
  readonly config: Config;
  constructor(config: Config) {
    this.config = config;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    const init: RequestInit = { method, headers: { ...headers } };
    if (this.config.token) (init.headers as Record<string, string>).authorization = `Bearer ${this.config.token}`;
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) {
      init.body = JSON.stringify(body);
      (init.headers as Record<string, string>)["content-type"] = "application/json";
    }
    return this.send<T>(path, init);
  }

  /** fetch, then the answer parsed as JSON (or its text); an error answer raises ApiFailure. */
  private async send<T>(path: string, init: RequestInit): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.config.url + path, init);
    } catch (error) {
      throw new Error(`cannot reach ${this.config.url} (${(error as Error).cause ?? (error as Error).message}); set --url or EML_URL`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: keep the text */
    }
    if (!res.ok) throw new ApiFailure(res.status, parsed);
    return parsed as T;
  }

  /** A download: the response itself (its body not yet read); an error answer raises ApiFailure. */
  async download(path: string): Promise<Response> {
    const headers: Record<string, string> = this.config.token ? { authorization: `Bearer ${this.config.token}` } : {};
    let res: Response;
    try {
      res = await fetch(this.config.url + path, { headers });
    } catch (error) {
      throw new Error(`cannot reach ${this.config.url} (${(error as Error).cause ?? (error as Error).message}); set --url or EML_URL`);
    }
    if (!res.ok) {
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
      throw new ApiFailure(res.status, parsed);
    }
    return res;
  }

  /**
   * Uploads a file as the request body with its Content-Length (the batch and feature-load routes
   * require one), through node:http so the bytes written can be reported as they go out.
   */
  async upload<T = unknown>(path: string, file: string, contentType: string, onProgress: (sent: number, total: number) => void = () => {}): Promise<T> {
    const total = statSync(file).size;
    const url = new URL(this.config.url + path);
    const headers: Record<string, string> = { "content-type": contentType, "content-length": String(total) };
    if (this.config.token) headers.authorization = `Bearer ${this.config.token}`;
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (url.protocol === "https:" ? httpsRequest : httpRequest)(url.href, { method: "POST", headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      });
      req.on("error", (error) => reject(new Error(`cannot reach ${this.config.url} (${error.message}); set --url or EML_URL`)));
      let sent = 0;
      const stream = createReadStream(file, { highWaterMark: 256 * 1024 });
      stream.on("data", (chunk) => {
        sent += chunk.length;
        onProgress(sent, total);
        if (!req.write(chunk)) {
          stream.pause();
          req.once("drain", () => stream.resume());
        }
      });
      stream.on("end", () => req.end());
      stream.on("error", (error) => req.destroy(error));
    });
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : null;
    } catch {
      /* not JSON: keep the text */
    }
    if (status < 200 || status >= 300) throw new ApiFailure(status, parsed);
    return parsed as T;
  }

  /**
   * Sends `body` (a Blob, e.g. a serialized multipart form) as a streamed request body with its
   * Content-Length, through fetch (duplex: 'half'); `onProgress(sent, total)` is called as fetch
   * pulls the bytes, i.e. as fast as the connection takes them.
   */
  async sendBlob<T = unknown>(method: string, path: string, body: Blob, contentType: string, onProgress: (sent: number, total: number) => void = () => {}, headers: Record<string, string> = {}): Promise<T> {
    const all: Record<string, string> = { ...headers, "content-type": contentType, "content-length": String(body.size) };
    if (this.config.token) all.authorization = `Bearer ${this.config.token}`;
    const init: RequestInit & { duplex: "half" } = { method, headers: all, body: countingStream(body, (sent) => onProgress(sent, body.size)), duplex: "half" };
    return this.send<T>(path, init);
  }

  get<T = unknown>(path: string) {
    return this.request<T>("GET", path);
  }
  post<T = unknown>(path: string, body?: unknown) {
    return this.request<T>("POST", path, body ?? {});
  }
  put<T = unknown>(path: string, body: unknown) {
    return this.request<T>("PUT", path, body);
  }
  delete<T = unknown>(path: string) {
    return this.request<T>("DELETE", path);
  }
}
