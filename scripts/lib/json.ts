/**
 * JSON.stringify with 2-space indentation, but arrays of primitives and short flat objects kept on one
 * line (compact, diff-friendly). Output parses to the same value as JSON.stringify's.
 */
export function formatJson(value: unknown, opts: { indent?: number; inlineLimit?: number } = {}): string {
  const indent = opts.indent ?? 2;
  const inlineLimit = opts.inlineLimit ?? 100;
  const pad = (d: number) => " ".repeat(d * indent);
  const fmt = (v: unknown, d: number): string => {
    if (v === null || typeof v !== "object") return JSON.stringify(v) ?? "null";
    if (Array.isArray(v)) {
      if (v.length === 0) return "[]";
      if (v.every((x) => x === null || typeof x !== "object")) return `[${v.map((x) => JSON.stringify(x)).join(", ")}]`;
      return `[\n${v.map((x) => pad(d + 1) + fmt(x, d + 1)).join(",\n")}\n${pad(d)}]`;
    }
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return "{}";
    if (entries.every(([, x]) => x === null || typeof x !== "object")) {
      const inline = `{ ${entries.map(([k, x]) => `${JSON.stringify(k)}: ${JSON.stringify(x)}`).join(", ")} }`;
      if (inline.length <= inlineLimit) return inline;
    }
    return `{\n${entries.map(([k, x]) => `${pad(d + 1)}${JSON.stringify(k)}: ${fmt(x, d + 1)}`).join(",\n")}\n${pad(d)}}`;
  };
  return fmt(value, 0) + "\n";
}
