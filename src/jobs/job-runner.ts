import type { Services } from '../flows/context.ts';
import { limits } from '../limits.ts';
import { expireAuthorizations } from './expire-authorizations.ts';
import { deliverSandboxNotifications } from './deliver-sandbox-notifications.ts';
import { recoverPendingRefunds } from './recover-refunds.ts';
import { reapIdempotencyKeys, reapRequestNonces, reapVelocity } from './reap-idempotency-keys.ts';
import { sealAuditLog } from '../audit/chain.ts';
import { recoverInFlightOperations, recoverPendingAttempts } from './recover-in-flight.ts';
import { settleFunds } from './settle-funds.ts';
import { syncWalletPayments } from './sync-wallet-payments.ts';
import { returnLateWalletPayments } from '../flows/wallet-late-payments.ts';
import { recoverSetupVerifications } from '../flows/setup-intents.ts';
import { settleCheckoutSessions } from './settle-checkout-sessions.ts';
import { deliverShopperMessages } from './deliver-shopper-messages.ts';

export interface Job {
  name: string;
  /** Handles at most one bounded batch; returns how many rows it handled (0 = nothing left to do now). */
  runBatch(services: Services): Promise<number>;
}

export const jobs: Job[] = [
  { name: 'recover-pending-attempts', runBatch: recoverPendingAttempts },
  { name: 'recover-in-flight-operations', runBatch: recoverInFlightOperations },
  { name: 'expire-authorizations', runBatch: expireAuthorizations },
  { name: 'recover-pending-refunds', runBatch: recoverPendingRefunds },
  { name: 'recover-setup-verifications', runBatch: recoverSetupVerifications },
  { name: 'deliver-sandbox-notifications', runBatch: deliverSandboxNotifications },
  { name: 'sync-wallet-payments', runBatch: syncWalletPayments },
  { name: 'return-late-wallet-payments', runBatch: returnLateWalletPayments },
  { name: 'settle-funds', runBatch: settleFunds },
  { name: 'settle-checkout-sessions', runBatch: settleCheckoutSessions },
  { name: 'deliver-shopper-messages', runBatch: deliverShopperMessages },
  { name: 'reap-idempotency-keys', runBatch: reapIdempotencyKeys },
  { name: 'reap-request-nonces', runBatch: reapRequestNonces },
  { name: 'reap-velocity', runBatch: (services) => reapVelocity(services.db, services.clock.nowMs()) },
  { name: 'seal-audit-log', runBatch: async (services) => (await sealAuditLog(services.db, services.clock.nowMs(), { signer: services.auditSigner, homeDir: services.homeDir })).sealed },
  {
    name: 'maintain-storage',
    runBatch: async (services) => {
      await services.maintainStorage();
      return 0;
    },
  },
];

/** Some jobs of a run failed (each already logged); the others ran. */
export class JobsFailed extends Error {
  constructor(
    readonly jobs: string[],
    readonly handled: Record<string, number>,
  ) {
    super(`background jobs failed: ${jobs.join(', ')}`);
    this.name = 'JobsFailed';
  }
}

/**
 * Runs every job until it has nothing left or has used its batches for this run. Returns rows handled per job.
 * A job that fails is logged and left for the next run; the jobs after it still run (a payment whose recovery
 * keeps failing must not stop holds from expiring or the audit log from being sealed).
 */
export async function runJobsOnce(services: Services, list: readonly Job[] = jobs): Promise<Record<string, number>> {
  const handled: Record<string, number> = {};
  const failed: string[] = [];
  for (const job of list) {
    let total = 0;
    try {
      for (let batch = 0; batch < limits.jobBatchesPerRunMax; batch += 1) {
        const count = await job.runBatch(services);
        total += count;
        if (count < limits.jobBatchSize) break;
        if (batch === limits.jobBatchesPerRunMax - 1) {
          services.logger.warn({ job: job.name }, 'job hit its batch limit for this run; the rest waits for the next');
        }
      }
    } catch (error) {
      failed.push(job.name);
      services.logger.error({ err: error, job: job.name }, 'background job failed; retrying next run');
    }
    handled[job.name] = total;
  }
  if (failed.length > 0) throw new JobsFailed(failed, handled);
  return handled;
}

export interface JobRunner {
  stop(): Promise<void>;
}

/**
 * Runs the jobs every `limits.jobIntervalMs`, one run at a time, in this process. Several processes may run
 * them at once: each claims its rows with `FOR UPDATE SKIP LOCKED` or a lease, so no row is handled twice.
 */
export function startJobs(services: Services, intervalMs: number = limits.jobIntervalMs): JobRunner {
  let stopped = false;
  let current: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const tick = () => {
    current = runJobsOnce(services)
      .then(() => undefined)
      .catch((error: unknown) => {
        // A failed job was logged where it failed; anything else is logged here.
        if (!(error instanceof JobsFailed)) services.logger.error({ err: error }, 'background jobs failed; retrying next run');
      })
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, intervalMs);
      });
  };
  timer = setTimeout(tick, intervalMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
