/**
 * DeploymentStats: one Durable Object per deployment (idFromName(deployment id)) holding what the
 * deployment's traffic did, per variant and per minute: requests, errors, a latency DDSketch, a
 * score histogram (20 bins over [0, 1], classifier scores), feedback counts, a bounded sample of
 * (score, label) pairs for AUC, and shadow comparisons.
 *
 * Why per deployment: the A/B results endpoint, the shadow report and the bandit all read one
 * deployment at a time, and writes from a busy model spread over one object per deployment rather
 * than one global object. Isolates batch observations (recorder.ts), so an object takes about one
 * write per isolate per flush interval rather than one per prediction.
 *
 * Storage is bounded: minute rows and labels older than RETENTION_DAYS are purged by alarm(), and
 * labels are capped per variant. Schema is created in the constructor under blockConcurrencyWhile.
 */
import { DurableObject } from "cloudflare:workers";
import { DDSketch, type SketchJSON } from "../stats/sketch";

export const SCORE_BINS = 20;
export const SCORE_EDGES = Array.from({ length: SCORE_BINS + 1 }, (_, i) => i / SCORE_BINS);
const RETENTION_DAYS = 30;
const MAX_LABELS_PER_VARIANT = 20_000;
const DAY_MS = 86_400_000;

export interface ObservationInput {
  at: number;
  variant: string;
  version: string;
  /** Absent for failures. */
  latencyMs?: number;
  /** Classifier scores of the request's rows (empty for regressors). */
  scores?: number[];
  error?: boolean;
}

export interface FeedbackInput {
  at: number;
  variant: string;
  score: number;
  /** 1 when the outcome is the positive class, 0 otherwise. */
  positive: 0 | 1;
  /** 1 when the prediction was right. */
  correct: 0 | 1;
}

export interface ShadowInput {
  at: number;
  error?: boolean;
  timeout?: boolean;
  rows?: number;
  /** Rows not scored because the consumer's CPU budget was spent (shadow.ts). */
  skippedRows?: number;
  agreements?: number;
  absDiffs?: number[];
  latencyMs?: number;
}

export interface VariantSummary {
  version: string | null;
  requests: number;
  errors: number;
  latency: SketchJSON;
  score_counts: number[];
  score_sum: number;
  scored_rows: number;
  /** Raw scores (a uniform sample), when the source keeps them: canary windows from monitoring. */
  score_sample?: number[];
  feedback: { n: number; positives: number; correct: number };
  labels: { score: number; positive: number }[];
}

export interface ShadowSummary {
  requests: number;
  errors: number;
  timeouts: number;
  compared_rows: number;
  skipped_rows: number;
  agreements: number;
  abs_diff: SketchJSON;
  latency: SketchJSON;
}

export interface StatsSummary {
  since: number;
  variants: Record<string, VariantSummary>;
  shadow: ShadowSummary;
}

const minuteOf = (at: number) => Math.floor(at / 60_000);

export class DeploymentStats extends DurableObject<Env> {
  private sql: SqlStorage;
  private alarmSet = false;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    ctx.blockConcurrencyWhile(async () => {
      this.sql.exec(`CREATE TABLE IF NOT EXISTS obs (
        minute INTEGER NOT NULL, variant TEXT NOT NULL, version TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
        latency TEXT, scores TEXT, score_sum REAL NOT NULL DEFAULT 0, scored_rows INTEGER NOT NULL DEFAULT 0,
        fb_n INTEGER NOT NULL DEFAULT 0, fb_pos INTEGER NOT NULL DEFAULT 0, fb_correct INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (minute, variant))`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS labels (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, variant TEXT NOT NULL, score REAL NOT NULL, positive INTEGER NOT NULL)`);
      this.sql.exec(`CREATE INDEX IF NOT EXISTS labels_variant ON labels (variant, id)`);
      this.sql.exec(`CREATE TABLE IF NOT EXISTS shadow (
        minute INTEGER PRIMARY KEY, requests INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
        timeouts INTEGER NOT NULL DEFAULT 0, compared_rows INTEGER NOT NULL DEFAULT 0, agreements INTEGER NOT NULL DEFAULT 0,
        abs_diff TEXT, latency TEXT)`);
      // Added after the first release: objects created before it get the column here.
      const shadowColumns = this.sql.exec<{ name: string }>(`SELECT name FROM pragma_table_info('shadow')`).toArray();
      if (!shadowColumns.some((c) => c.name === "skipped_rows")) this.sql.exec(`ALTER TABLE shadow ADD COLUMN skipped_rows INTEGER NOT NULL DEFAULT 0`);
    });
  }

  private async ensureAlarm() {
    if (this.alarmSet) return;
    this.alarmSet = true;
    if ((await this.ctx.storage.getAlarm()) === null) await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
  }

  private row(minute: number, variant: string, version: string) {
    this.sql.exec(`INSERT INTO obs (minute, variant, version) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, minute, variant, version);
    return this.sql.exec<{ latency: string | null; scores: string | null }>(`SELECT latency, scores FROM obs WHERE minute = ? AND variant = ?`, minute, variant).one();
  }

  async record(o: ObservationInput): Promise<void> {
    return this.recordMany([o]);
  }

  /**
   * Records a batch (isolates buffer observations, see recorder.ts): one read and one write per
   * (minute, variant) touched, whatever the batch size.
   */
  async recordMany(list: ObservationInput[]): Promise<void> {
    const groups = new Map<string, ObservationInput[]>();
    for (const o of list) {
      const key = `${minuteOf(o.at)}\u0000${o.variant}`;
      const group = groups.get(key);
      if (group) group.push(o);
      else groups.set(key, [o]);
    }
    this.ctx.storage.transactionSync(() => {
      for (const group of groups.values()) {
        const { at, variant, version } = group[0];
        const minute = minuteOf(at);
        const current = this.row(minute, variant, version);
        const sketch = current.latency ? DDSketch.fromJSON(JSON.parse(current.latency)) : new DDSketch();
        const counts: number[] = current.scores ? JSON.parse(current.scores) : new Array(SCORE_BINS).fill(0);
        let errors = 0;
        let sum = 0;
        let scored = 0;
        for (const o of group) {
          if (o.error) {
            errors++;
            continue;
          }
          if (o.latencyMs !== undefined && Number.isFinite(o.latencyMs) && o.latencyMs >= 0) sketch.add(o.latencyMs);
          for (const s of o.scores ?? []) {
            if (!Number.isFinite(s)) continue;
            counts[Math.min(SCORE_BINS - 1, Math.max(0, Math.floor(s * SCORE_BINS)))]++;
            sum += s;
            scored++;
          }
        }
        this.sql.exec(
          `UPDATE obs SET requests = requests + ?, errors = errors + ?, latency = ?, scores = ?, score_sum = score_sum + ?, scored_rows = scored_rows + ? WHERE minute = ? AND variant = ?`,
          group.length,
          errors,
          JSON.stringify(sketch.toJSON()),
          JSON.stringify(counts),
          sum,
          scored,
          minute,
          variant,
        );
      }
    });
    await this.ensureAlarm();
  }

  async recordFeedback(f: FeedbackInput): Promise<void> {
    const minute = minuteOf(f.at);
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`INSERT INTO obs (minute, variant, version) VALUES (?, ?, '') ON CONFLICT DO NOTHING`, minute, f.variant);
      this.sql.exec(`UPDATE obs SET fb_n = fb_n + 1, fb_pos = fb_pos + ?, fb_correct = fb_correct + ? WHERE minute = ? AND variant = ?`, f.positive, f.correct, minute, f.variant);
      if (Number.isFinite(f.score)) this.sql.exec(`INSERT INTO labels (at, variant, score, positive) VALUES (?, ?, ?, ?)`, f.at, f.variant, f.score, f.positive);
    });
    await this.ensureAlarm();
  }

  async recordShadow(s: ShadowInput): Promise<void> {
    return this.recordShadowMany([s]);
  }

  /** Several comparisons (one consumer batch) in one transaction: each minute's sketches are read and written once. */
  async recordShadowMany(items: ShadowInput[]): Promise<void> {
    const byMinute = new Map<number, ShadowInput[]>();
    for (const s of items) {
      const minute = minuteOf(s.at);
      byMinute.set(minute, [...(byMinute.get(minute) ?? []), s]);
    }
    this.ctx.storage.transactionSync(() => {
      for (const [minute, list] of byMinute) {
        this.sql.exec(`INSERT INTO shadow (minute) VALUES (?) ON CONFLICT DO NOTHING`, minute);
        const current = this.sql.exec<{ abs_diff: string | null; latency: string | null }>(`SELECT abs_diff, latency FROM shadow WHERE minute = ?`, minute).one();
        const diff = current.abs_diff ? DDSketch.fromJSON(JSON.parse(current.abs_diff)) : new DDSketch(0.01, 1e-9);
        const latency = current.latency ? DDSketch.fromJSON(JSON.parse(current.latency)) : new DDSketch();
        const sum = { errors: 0, timeouts: 0, rows: 0, skipped: 0, agreements: 0 };
        for (const s of list) {
          for (const d of s.absDiffs ?? []) if (Number.isFinite(d)) diff.add(Math.abs(d));
          if (s.latencyMs !== undefined && s.latencyMs >= 0) latency.add(s.latencyMs);
          sum.errors += s.error ? 1 : 0;
          sum.timeouts += s.timeout ? 1 : 0;
          sum.rows += s.rows ?? 0;
          sum.skipped += s.skippedRows ?? 0;
          sum.agreements += s.agreements ?? 0;
        }
        this.sql.exec(
          `UPDATE shadow SET requests = requests + ?, errors = errors + ?, timeouts = timeouts + ?, compared_rows = compared_rows + ?, skipped_rows = skipped_rows + ?, agreements = agreements + ?, abs_diff = ?, latency = ? WHERE minute = ?`,
          list.length,
          sum.errors,
          sum.timeouts,
          sum.rows,
          sum.skipped,
          sum.agreements,
          JSON.stringify(diff.toJSON()),
          JSON.stringify(latency.toJSON()),
          minute,
        );
      }
    });
    await this.ensureAlarm();
  }

  /** Everything recorded since `since` and before `until` (epoch ms, both rounded down to their minute). */
  async summary(since = 0, labelsPerVariant = 5000, until?: number): Promise<StatsSummary> {
    const from = minuteOf(since);
    const to = until === undefined ? Number.MAX_SAFE_INTEGER : minuteOf(until);
    const variants: Record<string, VariantSummary> = {};
    const rows = this.sql.exec<{
      variant: string;
      version: string;
      requests: number;
      errors: number;
      latency: string | null;
      scores: string | null;
      score_sum: number;
      scored_rows: number;
      fb_n: number;
      fb_pos: number;
      fb_correct: number;
    }>(`SELECT * FROM obs WHERE minute >= ? AND minute < ?`, from, to);
    for (const r of rows) {
      const v = (variants[r.variant] ??= {
        version: null,
        requests: 0,
        errors: 0,
        latency: new DDSketch().toJSON(),
        score_counts: new Array(SCORE_BINS).fill(0),
        score_sum: 0,
        scored_rows: 0,
        feedback: { n: 0, positives: 0, correct: 0 },
        labels: [],
      });
      if (r.version) v.version = r.version;
      v.requests += r.requests;
      v.errors += r.errors;
      if (r.latency) v.latency = DDSketch.fromJSON(v.latency).merge(JSON.parse(r.latency)).toJSON();
      if (r.scores) (JSON.parse(r.scores) as number[]).forEach((c, i) => (v.score_counts[i] += c));
      v.score_sum += r.score_sum;
      v.scored_rows += r.scored_rows;
      v.feedback.n += r.fb_n;
      v.feedback.positives += r.fb_pos;
      v.feedback.correct += r.fb_correct;
    }
    for (const [name, v] of Object.entries(variants)) {
      v.labels = this.sql
        .exec<{ score: number; positive: number }>(`SELECT score, positive FROM labels WHERE variant = ? AND at >= ? AND at < ? ORDER BY id DESC LIMIT ?`, name, from * 60_000, to === Number.MAX_SAFE_INTEGER ? to : to * 60_000, labelsPerVariant)
        .toArray();
    }
    const shadow: ShadowSummary = { requests: 0, errors: 0, timeouts: 0, compared_rows: 0, skipped_rows: 0, agreements: 0, abs_diff: new DDSketch(0.01, 1e-9).toJSON(), latency: new DDSketch().toJSON() };
    for (const r of this.sql.exec<{ requests: number; errors: number; timeouts: number; compared_rows: number; skipped_rows: number; agreements: number; abs_diff: string | null; latency: string | null }>(
      `SELECT * FROM shadow WHERE minute >= ? AND minute < ?`,
      from,
      to,
    )) {
      shadow.requests += r.requests;
      shadow.errors += r.errors;
      shadow.timeouts += r.timeouts;
      shadow.compared_rows += r.compared_rows;
      shadow.skipped_rows += r.skipped_rows;
      shadow.agreements += r.agreements;
      if (r.abs_diff) shadow.abs_diff = DDSketch.fromJSON(shadow.abs_diff).merge(JSON.parse(r.abs_diff)).toJSON();
      if (r.latency) shadow.latency = DDSketch.fromJSON(shadow.latency).merge(JSON.parse(r.latency)).toJSON();
    }
    return { since: from * 60_000, variants, shadow };
  }

  /** Purges data older than the retention and caps labels per variant; re-arms daily. */
  async alarm(): Promise<void> {
    const cutoff = Date.now() - RETENTION_DAYS * DAY_MS;
    this.ctx.storage.transactionSync(() => {
      this.sql.exec(`DELETE FROM obs WHERE minute < ?`, minuteOf(cutoff));
      this.sql.exec(`DELETE FROM shadow WHERE minute < ?`, minuteOf(cutoff));
      this.sql.exec(`DELETE FROM labels WHERE at < ?`, cutoff);
      for (const { variant } of this.sql.exec<{ variant: string }>(`SELECT DISTINCT variant FROM labels`).toArray()) {
        this.sql.exec(`DELETE FROM labels WHERE variant = ? AND id NOT IN (SELECT id FROM labels WHERE variant = ? ORDER BY id DESC LIMIT ?)`, variant, variant, MAX_LABELS_PER_VARIANT);
      }
    });
    await this.ctx.storage.setAlarm(Date.now() + DAY_MS);
  }
}

/** The stats object of one deployment. */
export function statsFor(env: Env, deploymentId: string) {
  return env.DEPLOYMENT_STATS.get(env.DEPLOYMENT_STATS.idFromName(deploymentId));
}
