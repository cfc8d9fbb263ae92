/**
 * Worker entry: the HTTP app, and (as later capabilities land) the scheduled and queue handlers
 * and Durable Object classes. Wiring only.
 */
import { createApp } from "./app";

const app = createApp();

export default {
  fetch: app.fetch,
} satisfies ExportedHandler<Env>;
