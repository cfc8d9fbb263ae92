/**
 * Notifications: targets configured by admins per model, messages delivered through a Queue.
 *
 * Flow: the model's control object writes each notification to its outbox in the same
 * transaction as the alert state change, then sends one queue message per (notification,
 * target) and deletes the outbox rows once the queue accepted them (rows left behind are resent
 * at the next evaluation), so no notification is lost between state change and queue. The
 * consumer delivers one message per target; a receiver that fails gets the message again with
 * exponential back-off, up to `max_retries` (wrangler.toml), then it lands in the dead-letter
 * queue, whose consumer records it with the model's control object for admins to inspect and
 * replay. Delivery is at-least-once: receivers dedupe with the `x-edge-ml-delivery` id.
 *
 * Channels: Slack-compatible webhooks (`{text, blocks}`), generic JSON webhooks signed with
 * HMAC-SHA256 (`x-edge-ml-signature: t=<unix seconds>,v1=<hex hmac(secret, t + "." + body)>`),
 * and email through the `send_email` binding. Webhook URLs must be https (checked when
 * configured and again before each delivery). Tests deliver through the TEST_WEBHOOK_SINK
 * service binding, which exists only in vitest.config.ts; it does not relax the https rule.
 */
import { hex } from "../http/encoding";
import { queueBaseName } from "../http/queues";
import { z } from "zod";
import { severitySchema, type Severity } from "./sla";

const httpsUrl = z
  .string()
  .url()
  .refine((u) => isHttpsUrl(u), { message: "webhook URLs must be https:// without credentials" });

export function isHttpsUrl(u: string): boolean {
  try {
    const url = new URL(u);
    return url.protocol === "https:" && !url.username && !url.password;
  } catch {
    return false;
  }
}

const targetId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, "target id: lowercase letters, digits, '_' and '-'");
const common = { id: targetId, min_severity: severitySchema.default("warning"), reports: z.boolean().default(true) };

export const targetSchema = z.discriminatedUnion("type", [
  z.object({ ...common, type: z.literal("slack"), url: httpsUrl }).strict(),
  z.object({ ...common, type: z.literal("webhook"), url: httpsUrl, secret: z.string().min(16, "secret: at least 16 characters") }).strict(),
  z.object({ ...common, type: z.literal("email"), to: z.string().email() }).strict(),
]);
export type Target = z.infer<typeof targetSchema>;
export const targetsBodySchema = z.object({ targets: z.array(targetSchema).max(20) }).strict();

/** A target as shown to admins: the webhook secret never leaves the object. */
export function redactTarget(t: Target) {
  return t.type === "webhook" ? { ...t, secret: "<redacted>" } : t;
}

export interface Notification {
  kind: "alert" | "report";
  model: string;
  version?: string;
  severity: Severity;
  state?: "firing" | "resolved" | "no_data";
  rule?: string;
  title: string;
  text: string;
  value?: number | null;
  threshold?: number | null;
  at: number;
  /** Links (report objects in R2, dashboard). */
  links?: Record<string, string>;
}

export interface NotificationMessage {
  id: string;
  model: string;
  target: string;
  notification: Notification;
}

const encoder = new TextEncoder();

export async function hmacHex(secret: string, payload: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(payload)));
  return hex(sig);
}

export function slackPayload(n: Notification) {
  const icon = n.state === "resolved" ? ":white_check_mark:" : n.state === "no_data" ? ":grey_question:" : n.severity === "critical" ? ":rotating_light:" : n.severity === "warning" ? ":warning:" : ":information_source:";
  const fields = [
    { type: "mrkdwn", text: `*Model*\n${n.model}${n.version ? `@${n.version}` : ""}` },
    { type: "mrkdwn", text: `*Severity*\n${n.severity}` },
    ...(n.value !== undefined && n.value !== null ? [{ type: "mrkdwn", text: `*Value*\n${n.value}` }] : []),
    ...(n.threshold !== undefined && n.threshold !== null ? [{ type: "mrkdwn", text: `*Threshold*\n${n.threshold}` }] : []),
  ];
  return {
    text: `${icon} ${n.title}`,
    blocks: [
      { type: "section", text: { type: "mrkdwn", text: `${icon} *${n.title}*\n${n.text}` } },
      { type: "section", fields },
      ...(n.links ? [{ type: "context", elements: Object.entries(n.links).map(([k, v]) => ({ type: "mrkdwn", text: `<${v}|${k}>` })) }] : []),
    ],
  };
}

function emailRaw(from: string, to: string, n: Notification, id: string): string {
  const subject = `[edge-ml ${n.severity}] ${n.title}`.replace(/[\r\n]+/g, " ");
  const lines = [n.text, "", `model: ${n.model}${n.version ? `@${n.version}` : ""}`, `severity: ${n.severity}`, ...(n.state ? [`state: ${n.state}`] : []), ...Object.entries(n.links ?? {}).map(([k, v]) => `${k}: ${v}`)];
  return [
    `From: ${from}`,
    `To: ${to}`,
    `Subject: ${subject}`,
    `Message-ID: <${id}@${from.split("@")[1] ?? "edge-ml"}>`,
    `Date: ${new Date(n.at).toUTCString()}`,
    "MIME-Version: 1.0",
    "Content-Type: text/plain; charset=utf-8",
    "",
    lines.join("\r\n"),
  ].join("\r\n");
}

/** The fetcher webhooks go through: the real network, or the test-only sink binding. */
function webhookFetch(env: Env): (url: string, init: RequestInit) => Promise<Response> {
  const sink = (env as unknown as { TEST_WEBHOOK_SINK?: Fetcher }).TEST_WEBHOOK_SINK;
  return sink ? (url, init) => sink.fetch(url, init) : (url, init) => fetch(url, init);
}

export class DeliveryError extends Error {}

/** Delivers one notification to one target; throws DeliveryError when the receiver did not accept it. */
export async function deliver(env: Env, target: Target, message: NotificationMessage): Promise<void> {
  const n = message.notification;
  if (target.type === "email") {
    const from = (env as unknown as Record<string, string | undefined>).ALERT_EMAIL_FROM ?? "alerts@edge-ml.invalid";
    const { EmailMessage } = await import("cloudflare:email");
    await env.ALERT_EMAIL.send(new EmailMessage(from, target.to, emailRaw(from, target.to, n, message.id)));
    return;
  }
  if (!isHttpsUrl(target.url)) throw new DeliveryError("refusing to deliver to a non-https URL");
  const body = JSON.stringify(target.type === "slack" ? slackPayload(n) : { id: message.id, ...n });
  const headers: Record<string, string> = { "content-type": "application/json", "x-edge-ml-delivery": message.id, "user-agent": "edge-ml-runtime/1" };
  if (target.type === "webhook") {
    const t = Math.floor(Date.now() / 1000);
    headers["x-edge-ml-signature"] = `t=${t},v1=${await hmacHex(target.secret, `${t}.${body}`)}`;
  }
  let res: Response;
  try {
    res = await webhookFetch(env)(target.url, { method: "POST", headers, body, redirect: "manual" });
  } catch (error) {
    throw new DeliveryError(`request failed: ${String(error)}`);
  }
  await res.body?.cancel();
  if (res.status < 200 || res.status >= 300) throw new DeliveryError(`receiver answered ${res.status}`);
}

/**
 * Attempts a notification gets: the first delivery plus `max_retries` (8) of the
 * `edge-ml-notifications` consumer in wrangler.toml. The consumer parks a message itself after
 * its last failed attempt, with the real count and error; the dead-letter queue remains the
 * backstop for messages that exhaust their retries without reaching that point (a consumer that
 * crashed), and those are recorded with this count, the least they went through.
 */
export const NOTIFICATION_MAX_ATTEMPTS = 9;

/** The notification queue and its dead-letter queue, as wrangler.toml's top level names them. */
export const NOTIFICATIONS_QUEUE = "edge-ml-notifications";
export const NOTIFICATIONS_DLQ = "edge-ml-notifications-dlq";

/** Queue consumer for notifications and for their dead-letter queue. */
export async function consumeNotifications(batch: MessageBatch<NotificationMessage>, env: Env): Promise<void> {
  const dead = queueBaseName(batch.queue, env) === NOTIFICATIONS_DLQ;
  for (const msg of batch.messages) {
    const body = msg.body;
    const control = env.MODEL_CONTROL.getByName(body.model);
    if (dead) {
      await control.recordDeadLetter(body, Math.max(msg.attempts, NOTIFICATION_MAX_ATTEMPTS));
      msg.ack();
      continue;
    }
    const target = await control.target(body.target);
    if (!target) {
      await control.recordDelivery(body.id, "dropped", msg.attempts, "the target was removed");
      msg.ack(); // the target was removed since: nothing to deliver to
      continue;
    }
    try {
      await deliver(env, target, body);
      await control.recordDelivery(body.id, "delivered", msg.attempts).catch(() => undefined); // bookkeeping must not cause a resend
      msg.ack();
    } catch (error) {
      const reason = error instanceof DeliveryError ? error.message : String(error);
      console.error(JSON.stringify({ level: "warn", msg: "notification delivery failed", target: body.target, attempts: msg.attempts, error: reason }));
      if (msg.attempts >= NOTIFICATION_MAX_ATTEMPTS) {
        await control.recordDeadLetter(body, msg.attempts, reason);
        msg.ack();
      } else {
        await control.recordDelivery(body.id, "retrying", msg.attempts, reason);
        msg.retry({ delaySeconds: Math.min(600, 5 * 2 ** Math.min(msg.attempts, 7)) });
      }
    }
  }
}
