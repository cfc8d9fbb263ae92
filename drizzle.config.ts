/** drizzle-kit: generates SQL migrations in migrations/ from src/registry/tables.ts (and later tables). */
import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: ["./src/registry/tables.ts", "./src/deployments/tables.ts", "./src/batch/tables.ts"],
  out: "./migrations",
});
