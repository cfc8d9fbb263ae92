/** Repository files for tests inside workerd, through the TEST_FILES service binding (vitest.config.ts). */
import { env } from "cloudflare:test";

export async function repoBytes(path: string): Promise<Uint8Array> {
  const res = await env.TEST_FILES.fetch(`http://files/${path}`);
  if (!res.ok) throw new Error(`test file ${path}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

export async function repoJson<T = any>(path: string): Promise<T> {
  return JSON.parse(new TextDecoder().decode(await repoBytes(path))) as T;
}

export async function repoText(path: string): Promise<string> {
  return new TextDecoder().decode(await repoBytes(path));
}
