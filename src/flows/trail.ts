import type { ApiVersion } from '../objects/api-version.ts';
import type { RequestContext } from './context.ts';

/** Who caused a change and through which request: written to the audit log and to events. */
export interface Trail {
  actorType: 'api_key' | 'staff' | 'system' | 'shopper';
  actorId: string;
  requestId: string | null;
  origin: string | null;
  idempotencyKey: string | null;
  /** The version events are rendered in: the merchant's default. */
  eventApiVersion: ApiVersion;
}

export function requestTrail(ctx: RequestContext): Trail {
  return {
    actorType: ctx.shopperSession !== undefined ? 'shopper' : ctx.staffUserId === undefined ? 'api_key' : 'staff',
    actorId: ctx.shopperSession ?? ctx.staffUserId ?? ctx.actor.apiKeyId,
    requestId: ctx.requestId,
    origin: ctx.origin,
    idempotencyKey: ctx.idempotency?.key ?? null,
    eventApiVersion: ctx.actor.eventApiVersion,
  };
}

export function systemTrail(job: string, eventApiVersion: ApiVersion): Trail {
  return { actorType: 'system', actorId: job, requestId: null, origin: null, idempotencyKey: null, eventApiVersion };
}
