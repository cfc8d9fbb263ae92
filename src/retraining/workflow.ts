/**
 * A job's life on Cloudflare Workflows: durable steps with retries, and `waitForEvent` for the
 * trainer's completion callback, so a job that spans hours survives restarts and redeploys. The
 * instance id is the job id. Steps:
 *
 *   export      archive -> training and out-of-time objects in R2 (archive.ts)
 *   enqueue     the dispatch queue message (dispatch.ts calls the trainer, retries, DLQ)
 *   wait        for "trainer-result" (sent by the signed completion callback, or by the DLQ
 *               consumer when the trainer could not be reached), up to training_timeout_hours
 *   validate    champion vs candidate on the OOT set; rejected ends here (validate.ts)
 *   release     register + canary; job -> promoted. The watch runs in the cron (watch.ts).
 *
 * Every step re-reads the job, so a cancelled or failed job stops at its next step. Any step that
 * exhausts its retries fails the job with the error (never left hanging in a middle state).
 */
import { WorkflowEntrypoint, type WorkflowEvent, type WorkflowStep } from "cloudflare:workers";
import { ApiError } from "../http/errors";
import { registryDb } from "../registry/store";
import { exportTrainingData } from "./export";
import { ACTOR, failJob } from "./jobs";
import type { CompleteCallback } from "./model";
import { getConfig, getJob, updateJob } from "./store";
import { releaseJob, validateJob } from "./validate";

export interface JobParams {
  job_id: string;
}

export const TRAINER_RESULT = "trainer-result";
const OPEN = ["queued", "dispatched", "training", "validating"];

export class RetrainingWorkflow extends WorkflowEntrypoint<Env, JobParams> {
  async run(event: WorkflowEvent<JobParams>, step: WorkflowStep) {
    const id = event.payload.job_id;
    const env = this.env;
    const db = registryDb(env.DB);
    const open = async () => OPEN.includes((await getJob(db, id)).state);
    try {
      const exported = await step.do("export", { retries: { limit: 3, delay: "10 seconds", backoff: "exponential" }, timeout: "10 minutes" }, async () => {
        const job = await getJob(db, id);
        if (job.state !== "queued") return null;
        const cfg = await getConfig(db, job.modelName);
        const summary = await exportTrainingData(env, job.modelName, id, cfg.config);
        await updateJob(db, id, (j) => ({ action: "export", actor: ACTOR, set: { export: summary }, details: { ...summary } }));
        return summary;
      });
      if (!exported || !(await open())) return { state: (await getJob(db, id)).state };
      const timeoutHours = await step.do("enqueue", async () => {
        const job = await getJob(db, id);
        await env.RETRAINING_DISPATCH.send({ job_id: id });
        return (await getConfig(db, job.modelName)).config.training_timeout_hours;
      });
      let result: CompleteCallback;
      try {
        const e = await step.waitForEvent<CompleteCallback>("wait for trainer", { type: TRAINER_RESULT, timeout: `${timeoutHours} hours` });
        result = e.payload;
      } catch {
        await step.do("time out", () => failJob(env, id, `no completion callback from the trainer within ${timeoutHours} h`).then(() => null));
        return { state: "failed" };
      }
      if (result.status === "failed") {
        await step.do("trainer failed", () => failJob(env, id, `trainer reported failure: ${result.error}`).then(() => null));
        return { state: "failed" };
      }
      const passed = await step.do("validate", { retries: { limit: 2, delay: "30 seconds", backoff: "exponential" }, timeout: "15 minutes" }, () => validateJob(env, id));
      if (!passed) return { state: (await getJob(db, id)).state };
      await step.do("release", { retries: { limit: 2, delay: "30 seconds", backoff: "exponential" }, timeout: "15 minutes" }, () => releaseJob(env, id).then(() => null));
      return { state: (await getJob(db, id)).state };
    } catch (error) {
      const reason = error instanceof ApiError ? error.message : String((error as Error)?.message ?? error);
      await step.do("fail", () => failJob(env, id, reason).then(() => null));
      return { state: "failed", error: reason };
    }
  }
}
