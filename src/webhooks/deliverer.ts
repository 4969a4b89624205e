import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';
import type { Services } from '../flows/context.ts';
import { limits } from '../limits.ts';
import { signatureHeader } from '../platform/timestamped-signature.ts';
import type { WebhookDeliveryRow, WebhookEndpointRow } from '../store/database.ts';
import { payloadForEndpoint, pendingWebhooksSql, withPendingWebhooks } from '../store/events.ts';
import { chargeListsShown } from '../objects/api-version.ts';
import { eventPayloadWithChargeLists } from '../objects/charge-lists.ts';
import { openSecret } from '../platform/secret-box.ts';
import { parseEndpointUrl, resolveDeliveryAddress } from './url-guard.ts';
import { relayEvents } from './relay.ts';
import { withDeadline } from '../platform/deadline.ts';

interface Answer {
  statusCode: number | null;
  error: string | null;
  latencyMs: number;
}

/** The secrets a delivery is signed with now: the current one, and the previous one until it expires. */
function signingSecrets(services: Services, endpoint: WebhookEndpointRow, nowMs: number): string[] {
  const secrets = [openSecret(services.webhooks.secretKey, endpoint.id, endpoint.secret_ciphertext).reveal()];
  if (endpoint.previous_secret_ciphertext !== null && endpoint.previous_secret_expires_at !== null
      && endpoint.previous_secret_expires_at.getTime() > nowMs) {
    secrets.push(openSecret(services.webhooks.secretKey, endpoint.id, endpoint.previous_secret_ciphertext).reveal());
  }
  return secrets;
}

/**
 * POSTs one event to one endpoint, connecting only to the address that was checked (no DNS rebinding), not
 * following redirects, reading at most a few KiB of the answer. The deadline covers everything, the address's
 * lookup and an answer that trickles in included, so that a delivery always ends well within its lease. Any
 * failure is an answer too.
 */
async function post(services: Services, endpoint: WebhookEndpointRow, body: string, nowMs: number): Promise<Answer> {
  const started = performance.now();
  const done = (statusCode: number | null, error: string | null): Answer => ({ statusCode, error, latencyMs: Math.round(performance.now() - started) });
  let url: URL;
  let target: { address: string; family: 4 | 6 };
  try {
    const policy = { livemode: endpoint.livemode, allowPrivate: services.webhooks.allowPrivate };
    url = parseEndpointUrl(endpoint.url, policy);
    target = await withDeadline(resolveDeliveryAddress(url, policy), limits.webhookTimeoutMs, `no address within ${limits.webhookTimeoutMs} ms`);
  } catch (error) {
    return done(null, (error as Error).message);
  }
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all === true) (callback as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [{ address: target.address, family: target.family }]);
    else callback(null, target.address, target.family);
  };
  const headers = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'stripe-signature': signatureHeader(signingSecrets(services, endpoint, nowMs), body, Math.floor(nowMs / 1000)),
    'user-agent': 'Coffer/1.0 (+webhooks)',
  };
  const client = url.protocol === 'https:' ? https : http;
  return new Promise<Answer>((settle) => {
    // One deadline for the whole exchange: an idle timeout would wait as long as an answer kept trickling in.
    const deadline = setTimeout(() => {
      request.destroy(new Error(`no answer within ${limits.webhookTimeoutMs} ms`));
      resolve(done(null, `no answer within ${limits.webhookTimeoutMs} ms`));
    }, Math.max(0, limits.webhookTimeoutMs - (performance.now() - started)));
    const resolve = (answer: Answer) => {
      clearTimeout(deadline);
      settle(answer);
    };
    const request = client.request(url, { method: 'POST', headers, lookup: pinned }, (response) => {
      let received = 0;
      response.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received > limits.webhookResponseBytesMax) response.destroy();
      });
      response.on('end', () => resolve(done(response.statusCode ?? null, null)));
      response.on('close', () => resolve(done(response.statusCode ?? null, null)));
      response.on('error', () => resolve(done(response.statusCode ?? null, null)));
    });
    request.on('error', (error) => resolve(done(null, error.message)));
    request.end(body);
  });
}


/** Claims (leases) up to `max` due deliveries: no other worker takes them until the lease ends. */
async function claimDueDeliveries(services: Services, max: number): Promise<WebhookDeliveryRow[]> {
  const nowMs = services.clock.nowMs();
  return services.db.updateTable('webhook_deliveries')
    .set({ next_attempt_at: new Date(nowMs + services.webhooks.timing.leaseMs) })
    .where('id', 'in', (eb) => eb.selectFrom('webhook_deliveries').select('id').where('status', '=', 'pending')
      .where('next_attempt_at', '<=', new Date(nowMs)).orderBy('next_attempt_at').limit(max).forUpdate().skipLocked())
    .returningAll().execute();
}

/** Sends one claimed delivery and records the attempt: delivered, to be retried after its delay, or failed. */
async function deliverOne(services: Services, delivery: WebhookDeliveryRow): Promise<void> {
  const nowMs = services.clock.nowMs();
  const event = await services.db.selectFrom('events')
    .select(['payload', 'api_version', 'other_shape', 'other_payload', 'merchant_id', 'livemode', 'created_at', pendingWebhooksSql.as('pending_webhooks')])
    .where('id', '=', delivery.event_id).executeTakeFirstOrThrow();
  const endpoint = await services.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', delivery.endpoint_id).executeTakeFirstOrThrow();
  const gone = endpoint.deleted_at !== null || endpoint.status !== 'enabled';
  let payload = payloadForEndpoint({ ...event, payload: event.payload as string, other_payload: event.other_payload as string | null }, endpoint);
  if (!gone && endpoint.api_version !== null && endpoint.api_shape !== null && chargeListsShown({ name: endpoint.api_version })) {
    // A version before 2022-11-15 lists the PaymentIntent's charges and the Charge's refunds (decision 0047).
    payload = await eventPayloadWithChargeLists(services.db, payload, endpoint.api_version,
      { merchantId: event.merchant_id, livemode: event.livemode, shape: endpoint.api_shape, asOf: new Date(event.created_at) });
  }
  // `pending_webhooks` counts this delivery, as Stripe's does: it is not received yet.
  const body = withPendingWebhooks(payload, event.pending_webhooks);
  const answer = gone ? { statusCode: null, error: 'the endpoint was disabled or deleted', latencyMs: 0 } : await post(services, endpoint, body, nowMs);
  const delivered = answer.statusCode !== null && answer.statusCode >= 200 && answer.statusCode < 300;
  const attempts = delivery.attempts + 1;
  const delay = services.webhooks.timing.retryDelaysMs[attempts - 1];
  const finishedAt = services.clock.nowMs();
  await services.db.with('attempt', (db) => db.insertInto('webhook_attempts').values({
    delivery_id: delivery.id, attempted_at: new Date(finishedAt), latency_ms: answer.latencyMs, status_code: answer.statusCode, error: answer.error,
  }).returning('id')).updateTable('webhook_deliveries').set({
    attempts,
    status: delivered ? 'succeeded' : gone || delay === undefined ? 'failed' : 'pending',
    next_attempt_at: new Date(finishedAt + (delay ?? 0)),
    last_attempt_at: new Date(finishedAt),
    last_status_code: answer.statusCode,
    last_error: answer.error,
    delivered_at: delivered ? new Date(finishedAt) : null,
  }).where('id', '=', delivery.id).execute();
}

/** Claims due deliveries, sends them in parallel and waits for all: one round, for jobs and tests. Returns how many. */
export async function deliverDueWebhooks(services: Services): Promise<number> {
  const due = await claimDueDeliveries(services, limits.webhookConcurrencyMax);
  await Promise.all(due.map((delivery) => deliverOne(services, delivery)));
  return due.length;
}

export interface WebhookWorker {
  stop(): Promise<void>;
}

/**
 * Relays and delivers continuously: while there is work it goes on at once, otherwise it looks again after a
 * short pause. Delivery is at least once: a crash after a POST but before its record leaves the lease to expire,
 * and the event (same id) is sent again; receivers deduplicate by event id.
 */
export function startWebhookWorker(services: Services): WebhookWorker {
  let stopped = false;
  let wake: (() => void) | undefined;
  // Deliveries under way, each in a slot of its own: a receiver that takes its whole deadline (or never answers)
  // holds one slot, while the worker goes on relaying events and sending the others' deliveries.
  const inFlight = new Set<Promise<void>>();
  const send = (delivery: WebhookDeliveryRow) => {
    const sending: Promise<void> = deliverOne(services, delivery)
      .catch((error: unknown) => services.logger.error({ err: error, delivery: delivery.id }, 'webhook delivery failed; its lease ends and it is tried again'))
      .finally(() => {
        inFlight.delete(sending);
        wake?.();
      });
    inFlight.add(sending);
  };
  const loop = (async () => {
    while (!stopped) {
      let worked = 0;
      try {
        worked += await relayEvents(services);
        const room = limits.webhookConcurrencyMax - inFlight.size;
        if (room > 0) {
          const due = await claimDueDeliveries(services, room);
          for (const delivery of due) send(delivery);
          worked += due.length;
        }
      } catch (error) {
        services.logger.error({ err: error }, 'webhook worker failed; retrying');
      }
      if (worked === 0 && !stopped) {
        // Until the next look, or until a delivery ends and frees its slot.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, limits.webhookPollIntervalMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
    await Promise.all(inFlight);
  })();
  return {
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
