/**
 * ModelControl: one Durable Object per model (named by the model), holding what is configured or
 * decided per model rather than measured per version: the versions seen serving (so readers
 * know which shards to ask), the SLA config, notification targets, alert state and history, SLA
 * compliance checks, the notification outbox, and dead letters.
 *
 * Alert semantics: an alert is identified by (version, rule). Firing -> firing is deduplicated
 * (value refreshed, no new notification); firing -> ok resolves it (notified); ok -> firing
 * notifies unless the same alert was notified less than `cooldown_minutes` ago, in which case the
 * transition is recorded in history as suppressed and notified at the first evaluation after the
 * cool-down ends if it still fires (a suppressed firing that resolves before then is resolved
 * silently: its receivers never heard of it). A firing alert whose rule has no data at an
 * evaluation (the version gets no more traffic, too few labels) moves to `no_data`, notified with
 * the alert's severity; data coming back fires or resolves it as usual. An alert whose rule is no
 * longer configured resolves.
 *
 * Deliveries: every notification queued for a target is a `deliveries` row (queued, retrying,
 * delivered, dead_letter, dropped) that the queue consumer updates, so alert history shows what
 * each target actually received and after how many attempts. Compliance rows are purged after 8
 * days, history and deliveries after 90 days, by the alarm.
 */
import { DurableObject } from "cloudflare:workers";
import { DAY, HOUR } from "./config";
import { type Notification, type NotificationMessage, redactTarget, type Target } from "./notify";
import { type Check, configuredRules, DEFAULT_SLA, SEVERITY_RANK, type SlaConfig, slaConfigSchema } from "./sla";

/** Figures of the latest evaluation of a version. */
export interface Snapshot {
  latency_ms_5m: { p50: number | null; p95: number | null; p99: number | null };
  requests_per_second_5m: number;
  error_rate_5m: number;
  score_psi_1h: number | null;
  feature_psi_1h: Record<string, number | null>;
  drifted_features_1h: string[];
  live: Record<string, number>;
  live_labels: number;
  compliant: boolean | null;
}

export type AlertRow = {
  key: string;
  version: string;
  rule: string;
  severity: string;
  state: "firing" | "resolved" | "no_data";
  value: number | null;
  threshold: number | null;
  message: string;
  fired_at: number;
  resolved_at: number | null;
  last_notified_at: number | null;
};

export type HistoryRow = {
  id: number;
  at: number;
  key: string;
  version: string;
  rule: string;
  severity: string;
  state: string;
  value: number | null;
  threshold: number | null;
  message: string;
  /** Targets the notification was queued for (0: none takes this severity, or nothing was sent). */
  notified: number;
};

export type DeliveryState = "queued" | "retrying" | "delivered" | "dead_letter" | "dropped";
export type Delivery = {
  id: string;
  target: string;
  state: DeliveryState;
  attempts: number;
  error: string | null;
  updated_at: number;
};

export class ModelControl extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`
        CREATE TABLE IF NOT EXISTS versions (version TEXT NOT NULL, shard TEXT NOT NULL, last_seen INTEGER NOT NULL, PRIMARY KEY (version, shard));
        CREATE TABLE IF NOT EXISTS config (key TEXT PRIMARY KEY, value TEXT NOT NULL, updated_at INTEGER NOT NULL, updated_by TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS targets (id TEXT PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS alerts (key TEXT PRIMARY KEY, version TEXT NOT NULL, rule TEXT NOT NULL, severity TEXT NOT NULL, state TEXT NOT NULL,
          value REAL, threshold REAL, message TEXT NOT NULL, fired_at INTEGER NOT NULL, resolved_at INTEGER, last_notified_at INTEGER);
        CREATE TABLE IF NOT EXISTS history (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, key TEXT NOT NULL, version TEXT NOT NULL, rule TEXT NOT NULL,
          severity TEXT NOT NULL, state TEXT NOT NULL, value REAL, threshold REAL, message TEXT NOT NULL, notified INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS compliance (at INTEGER NOT NULL, version TEXT NOT NULL, compliant INTEGER NOT NULL, violations TEXT NOT NULL, PRIMARY KEY (version, at));
        CREATE TABLE IF NOT EXISTS outbox (id TEXT PRIMARY KEY, body TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS snapshots (version TEXT PRIMARY KEY, at INTEGER NOT NULL, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS dead_letters (id TEXT PRIMARY KEY, at INTEGER NOT NULL, attempts INTEGER NOT NULL, body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, history_id INTEGER, target TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
          error TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS deliveries_history ON deliveries (history_id);
      `);
    });
  }

  async touch(version: string, shard: string): Promise<void> {
    this.sql.exec("INSERT OR REPLACE INTO versions (version, shard, last_seen) VALUES (?, ?, ?)", version, shard, Date.now());
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DAY);
  }

  /** Versions with traffic since `since`, with their stats shards. */
  async active(since = Date.now() - 8 * DAY): Promise<{ version: string; shards: string[] }[]> {
    const rows = this.sql.exec<{ version: string; shard: string }>("SELECT version, shard FROM versions WHERE last_seen >= ? ORDER BY version, shard", since).toArray();
    const out = new Map<string, string[]>();
    for (const r of rows) out.set(r.version, [...(out.get(r.version) ?? []), r.shard]);
    return [...out].map(([version, shards]) => ({ version, shards }));
  }

  async sla(): Promise<{ config: SlaConfig; updated_at: number | null; updated_by: string | null }> {
    const row = this.sql.exec<{ value: string; updated_at: number; updated_by: string }>("SELECT * FROM config WHERE key = 'sla'").toArray()[0];
    return row ? { config: slaConfigSchema.parse(JSON.parse(row.value)), updated_at: row.updated_at, updated_by: row.updated_by } : { config: DEFAULT_SLA, updated_at: null, updated_by: null };
  }

  async setSla(config: SlaConfig, actor: string): Promise<void> {
    this.sql.exec("INSERT OR REPLACE INTO config (key, value, updated_at, updated_by) VALUES ('sla', ?, ?, ?)", JSON.stringify(config), Date.now(), actor);
  }

  async setTargets(targets: Target[]): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("DELETE FROM targets");
      for (const t of targets) this.sql.exec("INSERT INTO targets (id, body) VALUES (?, ?)", t.id, JSON.stringify(t));
    });
  }

  async targets(): Promise<ReturnType<typeof redactTarget>[]> {
    return this.allTargets().map(redactTarget);
  }

  /** One target with its secret (for the queue consumer only; never rendered). */
  async target(id: string): Promise<Target | null> {
    const row = this.sql.exec<{ body: string }>("SELECT body FROM targets WHERE id = ?", id).toArray()[0];
    return row ? (JSON.parse(row.body) as Target) : null;
  }

  private allTargets(): Target[] {
    return this.sql.exec<{ body: string }>("SELECT body FROM targets ORDER BY id").toArray().map((r) => JSON.parse(r.body) as Target);
  }

  /**
   * Queues `n` for every target that wants it (in the caller's transaction), each with a
   * delivery row tied to `historyId`; returns how many targets it was queued for.
   */
  private enqueue(n: Notification, historyId: number | null = null): number {
    let queued = 0;
    const now = Date.now();
    for (const t of this.allTargets()) {
      const wanted = n.kind === "report" ? t.reports : SEVERITY_RANK[n.severity] >= SEVERITY_RANK[t.min_severity];
      if (!wanted) continue;
      const id = crypto.randomUUID();
      const message: NotificationMessage = { id, model: n.model, target: t.id, notification: n };
      this.sql.exec("INSERT INTO outbox (id, body, created_at) VALUES (?, ?, ?)", id, JSON.stringify(message), now);
      this.sql.exec("INSERT INTO deliveries (id, history_id, target, state, attempts, created_at, updated_at) VALUES (?, ?, ?, 'queued', 0, ?, ?)", id, historyId, t.id, now, now);
      queued++;
    }
    return queued;
  }

  /**
   * The queue consumer's report on one message: delivered, retrying (with the error) or dropped.
   * Attempts only grow and a delivered message stays delivered (at-least-once redeliveries).
   */
  async recordDelivery(id: string, state: Exclude<DeliveryState, "queued">, attempts: number, error?: string): Promise<void> {
    this.sql.exec(
      `UPDATE deliveries SET state = CASE WHEN state = 'delivered' THEN state ELSE ? END, attempts = MAX(attempts, ?), error = CASE WHEN ? = 'delivered' THEN NULL ELSE COALESCE(?, error) END, updated_at = ? WHERE id = ?`,
      state, attempts, state, error ?? null, Date.now(), id,
    );
  }

  async deliveries(historyIds: number[]): Promise<Record<number, Delivery[]>> {
    const out: Record<number, Delivery[]> = {};
    for (let i = 0; i < historyIds.length; i += 90) {
      const ids = historyIds.slice(i, i + 90);
      const rows = this.sql
        .exec<Delivery & { history_id: number }>(`SELECT id, history_id, target, state, attempts, error, updated_at FROM deliveries WHERE history_id IN (${ids.map(() => "?").join(",")}) ORDER BY target`, ...ids)
        .toArray();
      for (const { history_id, ...d } of rows) (out[history_id] ??= []).push(d);
    }
    return out;
  }

  /** Sends the outbox to the queue; rows stay until the queue accepted them. */
  async flushOutbox(): Promise<number> {
    return this.enqueueAndDelete("outbox", "SELECT id, body FROM outbox ORDER BY created_at LIMIT 100");
  }

  /** Sends up to 100 stored messages to the queue, deleting each row only once the queue accepted it. */
  private async enqueueAndDelete(table: "outbox" | "dead_letters", select: string): Promise<number> {
    const rows = this.sql.exec<{ id: string; body: string }>(select).toArray();
    if (!rows.length) return 0;
    await this.env.NOTIFICATIONS.sendBatch(rows.map((r) => ({ body: JSON.parse(r.body) as NotificationMessage, contentType: "json" as const })));
    this.ctx.storage.transactionSync(() => {
      for (const r of rows) this.sql.exec(`DELETE FROM ${table} WHERE id = ?`, r.id);
    });
    return rows.length;
  }

  async pendingOutbox(): Promise<number> {
    return this.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM outbox").one().n;
  }

  /**
   * Applies one evaluation of a version: alert transitions (with dedup and cool-down), history,
   * compliance, outbox; then flushes the outbox. Returns the transitions made.
   */
  async applyEvaluation(
    model: string,
    version: string,
    at: number,
    checks: Check[],
    snapshot?: Snapshot,
  ): Promise<{ fired: string[]; resolved: string[]; suppressed: string[]; no_data: string[] }> {
    const { config } = await this.sla();
    const cooldown = config.cooldown_minutes * 60_000;
    const configured = configuredRules(config);
    const result = { fired: [] as string[], resolved: [] as string[], suppressed: [] as string[], no_data: [] as string[] };
    this.ctx.storage.transactionSync(() => {
      type Subject = Pick<Check, "rule" | "severity" | "value" | "threshold" | "message">;
      const notification = (c: Subject, state: "firing" | "resolved" | "no_data"): Notification => ({
        kind: "alert",
        model,
        version,
        severity: c.severity,
        state,
        rule: c.rule,
        title: `${state === "firing" ? "FIRING" : state === "resolved" ? "RESOLVED" : "NO DATA"}: ${c.rule} on ${model}@${version}`,
        text: c.message,
        value: c.value,
        threshold: c.threshold,
        at,
      });
      /** A history row, and (when `notify`) the notification queued for the targets that take it. */
      const record = (c: Subject, state: string, notify: "firing" | "resolved" | "no_data" | null) => {
        const key = `${version}:${c.rule}`;
        this.sql.exec(
          "INSERT INTO history (at, key, version, rule, severity, state, value, threshold, message, notified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0)",
          at, key, version, c.rule, c.severity, state, c.value, c.threshold, c.message,
        );
        if (!notify) return;
        const id = this.sql.exec<{ id: number }>("SELECT last_insert_rowid() AS id").one().id;
        const queued = this.enqueue(notification(c, notify), id);
        this.sql.exec("UPDATE history SET notified = ? WHERE id = ?", queued, id);
      };
      const seen = new Set<string>();
      for (const c of checks) {
        const key = `${version}:${c.rule}`;
        seen.add(c.rule);
        const current = this.sql.exec<AlertRow>("SELECT * FROM alerts WHERE key = ?", key).toArray()[0];
        // Notified since it (last) fired; false for a firing the cool-down suppressed.
        const announced = current != null && current.last_notified_at != null && current.last_notified_at >= current.fired_at;
        if (c.firing && current?.state === "firing") {
          this.sql.exec("UPDATE alerts SET value = ?, message = ? WHERE key = ?", c.value, c.message, key);
          if (!announced && (current.last_notified_at == null || at - current.last_notified_at >= cooldown)) {
            // Suppressed by the cool-down and still firing now that it is over: notify once.
            this.sql.exec("UPDATE alerts SET last_notified_at = ? WHERE key = ?", at, key);
            record(c, "firing", "firing");
            result.fired.push(key);
          }
        } else if (c.firing) {
          const cooling = current?.last_notified_at != null && at - current.last_notified_at < cooldown;
          // Back from no_data: the alert keeps its firing time and is re-announced (no cool-down: its receivers were told data stopped).
          const fromNoData = current?.state === "no_data";
          const notify = fromNoData || !cooling;
          this.sql.exec(
            "INSERT OR REPLACE INTO alerts (key, version, rule, severity, state, value, threshold, message, fired_at, resolved_at, last_notified_at) VALUES (?, ?, ?, ?, 'firing', ?, ?, ?, ?, NULL, ?)",
            key, version, c.rule, c.severity, c.value, c.threshold, c.message, fromNoData ? current!.fired_at : at, notify ? at : current!.last_notified_at,
          );
          record(c, "firing", notify ? "firing" : null); // notified 0: suppressed by the cool-down
          if (notify) result.fired.push(key);
          else result.suppressed.push(key);
        } else if (current?.state === "firing" || current?.state === "no_data") {
          this.sql.exec("UPDATE alerts SET state = 'resolved', resolved_at = ?, value = ?, message = ? WHERE key = ?", at, c.value, c.message, key);
          record(c, "resolved", announced ? "resolved" : null);
          result.resolved.push(key);
        }
      }
      // Firing alerts of this version without a check: no data for a configured rule, or a rule no longer configured.
      for (const a of this.sql.exec<AlertRow>("SELECT * FROM alerts WHERE version = ? AND state = 'firing'", version).toArray()) {
        if (seen.has(a.rule)) continue;
        const announced = a.last_notified_at != null && a.last_notified_at >= a.fired_at;
        if (configured.has(a.rule)) {
          const message = `no data to evaluate ${a.rule} on ${model}@${version} (no traffic or too few labels in its window); last value ${a.value ?? "n/a"}`;
          this.sql.exec("UPDATE alerts SET state = 'no_data', message = ?, last_notified_at = ? WHERE key = ?", message, announced ? at : a.last_notified_at, a.key);
          record({ rule: a.rule, severity: a.severity as Check["severity"], value: null, threshold: a.threshold, message }, "no_data", announced ? "no_data" : null);
          result.no_data.push(a.key);
        } else {
          const message = `${a.rule} is no longer configured in the SLA`;
          this.sql.exec("UPDATE alerts SET state = 'resolved', resolved_at = ?, message = ? WHERE key = ?", at, message, a.key);
          record({ rule: a.rule, severity: a.severity as Check["severity"], value: null, threshold: a.threshold, message }, "resolved", announced ? "resolved" : null);
          result.resolved.push(a.key);
        }
      }
      if (snapshot) this.sql.exec("INSERT OR REPLACE INTO snapshots (version, at, body) VALUES (?, ?, ?)", version, at, JSON.stringify(snapshot));
      const violations = checks.filter((c) => c.sla && c.firing).map((c) => c.rule);
      if (checks.some((c) => c.sla)) {
        this.sql.exec("INSERT OR REPLACE INTO compliance (at, version, compliant, violations) VALUES (?, ?, ?, ?)", at, version, violations.length ? 0 : 1, JSON.stringify(violations));
      }
    });
    await this.flushOutboxSafely();
    return result;
  }

  /** The latest evaluation figures per version (what /metrics exports as gauges). */
  async snapshots(): Promise<{ version: string; at: number; snapshot: Snapshot }[]> {
    return this.sql
      .exec<{ version: string; at: number; body: string }>("SELECT * FROM snapshots ORDER BY version")
      .toArray()
      .map((r) => ({ version: r.version, at: r.at, snapshot: JSON.parse(r.body) as Snapshot }));
  }

  /** Announces a report (or any notification) to the targets that take it. */
  async announce(n: Notification): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.enqueue(n);
    });
    await this.flushOutboxSafely();
  }

  private async flushOutboxSafely() {
    try {
      await this.flushOutbox();
    } catch (error) {
      console.error(JSON.stringify({ level: "warn", msg: "outbox flush failed; kept for the next evaluation", error: String(error) }));
    }
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + HOUR);
  }

  /** Firing alerts, alerts without data, and history with each notification's deliveries per target. */
  async alerts(limit = 100): Promise<{ active: AlertRow[]; no_data: AlertRow[]; history: (HistoryRow & { deliveries: Delivery[] })[] }> {
    const history = this.sql.exec<HistoryRow>("SELECT * FROM history ORDER BY id DESC LIMIT ?", Math.min(limit, 1000)).toArray();
    const deliveries = await this.deliveries(history.filter((h) => h.notified > 0).map((h) => h.id));
    return {
      active: this.sql.exec<AlertRow>("SELECT * FROM alerts WHERE state = 'firing' ORDER BY fired_at DESC").toArray(),
      no_data: this.sql.exec<AlertRow>("SELECT * FROM alerts WHERE state = 'no_data' ORDER BY fired_at DESC").toArray(),
      history: history.map((h) => ({ ...h, deliveries: deliveries[h.id] ?? [] })),
    };
  }

  /** Share of compliant evaluations per version over 1 h / 24 h / 7 d, and the current status. */
  async compliance(now = Date.now()) {
    const versions = this.sql.exec<{ version: string }>("SELECT DISTINCT version FROM compliance ORDER BY version").toArray();
    return versions.map(({ version }) => {
      const share = (span: number) => {
        const r = this.sql.exec<{ n: number; ok: number }>("SELECT COUNT(*) AS n, COALESCE(SUM(compliant), 0) AS ok FROM compliance WHERE version = ? AND at >= ?", version, now - span).one();
        return { evaluations: r.n, compliant_share: r.n ? r.ok / r.n : null };
      };
      const last = this.sql.exec<{ at: number; compliant: number; violations: string }>("SELECT * FROM compliance WHERE version = ? ORDER BY at DESC LIMIT 1", version).one();
      return {
        version,
        current: { compliant: last.compliant === 1, violations: JSON.parse(last.violations) as string[], evaluated_at: last.at },
        windows: { "1h": share(HOUR), "24h": share(DAY), "7d": share(7 * DAY) },
      };
    });
  }

  /** Parks a message that exhausted its attempts (the consumer's count), and marks its delivery. */
  async recordDeadLetter(message: NotificationMessage, attempts: number, error?: string): Promise<void> {
    this.ctx.storage.transactionSync(() => {
      this.sql.exec("INSERT OR REPLACE INTO dead_letters (id, at, attempts, body) VALUES (?, ?, ?, ?)", message.id, Date.now(), attempts, JSON.stringify(message));
      this.sql.exec(
        "UPDATE deliveries SET state = CASE WHEN state = 'delivered' THEN state ELSE 'dead_letter' END, attempts = MAX(attempts, ?), error = COALESCE(?, error), updated_at = ? WHERE id = ?",
        attempts, error ?? null, Date.now(), message.id,
      );
    });
  }

  async deadLetters(): Promise<{ id: string; at: number; attempts: number; message: NotificationMessage }[]> {
    return this.sql
      .exec<{ id: string; at: number; attempts: number; body: string }>("SELECT * FROM dead_letters ORDER BY at DESC LIMIT 200")
      .toArray()
      .map((r) => ({ id: r.id, at: r.at, attempts: r.attempts, message: JSON.parse(r.body) as NotificationMessage }));
  }

  /** Puts dead letters back on the queue (after the receiver was fixed). */
  async replayDeadLetters(): Promise<number> {
    return this.enqueueAndDelete("dead_letters", "SELECT id, body FROM dead_letters LIMIT 100");
  }

  async alarm(): Promise<void> {
    const now = Date.now();
    await this.flushOutboxSafely();
    this.sql.exec("DELETE FROM compliance WHERE at < ?", now - 8 * DAY);
    this.sql.exec("DELETE FROM history WHERE at < ?", now - 90 * DAY);
    this.sql.exec("DELETE FROM deliveries WHERE created_at < ?", now - 90 * DAY);
    this.sql.exec("DELETE FROM versions WHERE last_seen < ?", now - 8 * DAY);
  }
}
