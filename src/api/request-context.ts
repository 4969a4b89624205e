import type { FastifyRequest } from 'fastify';
import { assert } from '../platform/assert.ts';
import type { Actor, IdempotencyClaim, RequestContext } from '../flows/context.ts';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
    idempotency: IdempotencyClaim | null;
  }
  interface FastifyContextConfig {
    /** Routes of the merchant API authenticate with an API key. */
    merchantApi?: boolean;
    /**
     * Top-level response fields never kept with an idempotency key (a webhook secret is shown once): an idempotent
     * replay gets the response with these fields replaced by a note.
     */
    replayRedacts?: string[];
  }
}

/** The flows' view of an authenticated request. */
export function requestContext(request: FastifyRequest): RequestContext {
  assert(request.actor !== null, 'merchant routes run after authentication');
  return {
    actor: request.actor,
    requestId: request.id,
    origin: request.ip,
    idempotency: request.idempotency ?? undefined,
  };
}
