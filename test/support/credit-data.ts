/** data/credit_data.csv as feature objects (missing cells omitted), typed by a model's feature schema. */
import { parseCsv } from "../../scripts/lib/csv";
import { repoText } from "./files";

export interface CreditRow {
  features: Record<string, number | string>;
  label: 0 | 1;
}

export async function creditRows(features: { name: string; type: string }[]): Promise<CreditRow[]> {
  const { header, rows } = parseCsv(await repoText("data/credit_data.csv"));
  const status = header.indexOf("Status");
  return rows.map((cells) => {
    const row: Record<string, number | string> = {};
    for (const f of features) {
      const cell = cells[header.indexOf(f.name)];
      if (cell === "" || cell === undefined) continue;
      row[f.name] = f.type === "categorical" ? cell : Number(cell);
    }
    return { features: row, label: cells[status] === "bad" ? 1 : 0 };
  });
}
