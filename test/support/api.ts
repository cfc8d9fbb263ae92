/** Real HTTP calls to the worker under test (SELF.fetch), with the test credentials. */
import { SELF } from "cloudflare:test";
import { repoBytes, repoJson } from "./files";

export const ADMIN = { authorization: "Bearer test-admin-token" };

export async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["content-type"] ??= "application/json";
  }
  const res = await SELF.fetch(`http://worker${path}`, init);
  const text = await res.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, json, text, headers: res.headers };
}

export function registerForm(manifest: unknown, artifact: Uint8Array, aliases: string[] = []): FormData {
  const form = new FormData();
  form.set("manifest", typeof manifest === "string" ? manifest : JSON.stringify(manifest));
  form.set("artifact", new Blob([artifact]), "model.onnx");
  for (const a of aliases) form.append("alias", a);
  return form;
}

export async function register(name: string, manifest: unknown, artifact: Uint8Array, aliases: string[] = [], headers: Record<string, string> = ADMIN) {
  const res = await SELF.fetch(`http://worker/admin/models/${name}/versions`, { method: "POST", headers, body: registerForm(manifest, artifact, aliases) });
  return { status: res.status, json: (await res.json()) as any };
}

/** Registers a model from models/ or test/fixtures/ by file stem. */
export async function registerStem(dir: string, stem: string, aliases: string[] = [], override: Record<string, unknown> = {}) {
  const manifest = { ...(await repoJson(`${dir}/${stem}.manifest.json`)), ...override };
  const artifact = await repoBytes(`${dir}/${stem}.onnx`);
  return register(manifest.name, manifest, artifact, aliases);
}
