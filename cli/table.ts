/** Plain terminal tables: column widths from the content, long cells cut with "…", no colours. */
export function table(rows: Record<string, unknown>[], columns: string[], maxWidth = 48): string {
  if (!rows.length) return "(none)";
  const cell = (v: unknown) => {
    const s = v === null || v === undefined ? "-" : typeof v === "object" ? JSON.stringify(v) : String(v);
    return s.length > maxWidth ? `${s.slice(0, maxWidth - 1)}…` : s;
  };
  const body = rows.map((r) => columns.map((c) => cell(r[c])));
  const widths = columns.map((c, i) => Math.max(c.length, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((s, i) => s.padEnd(widths[i])).join("  ").trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
