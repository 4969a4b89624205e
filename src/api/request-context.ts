import type { FastifyRequest } from 'fastify';
import { assert } from '../platform/assert.ts';
import type { Actor, IdempotencyClaim, RequestContext } from '../flows/context.ts';

declare module 'fastify' {
  interface FastifyRequest {
    actor: Actor | null;
    idempotency: IdempotencyClaim | null;
    /** The body as received, for request signatures. */
    rawBody: string | null;
    /** The sealed signing secret of a key that requires signed requests. */
    signingSecretSealed: Buffer | null;
  }
  interface FastifyContextConfig {
    /** Routes of the merchant API authenticate with an API key. */
    merchantApi?: boolean;
    /** Routes that collect card details accept publishable keys too. */
    publishableAllowed?: boolean;
    /**
     * Parameters whose values must never be stored, even hashed (card number, security code): the idempotency
     * key's request hash uses a keyed hash of them instead. Each is a path into the parameters
     * (`['payment_method_data', 'card', 'number']`).
     */
    sensitiveParams?: ReadonlyArray<readonly string[]>;
    /**
     * Top-level response fields never kept with an idempotency key (a webhook secret is shown once): an idempotent
     * replay gets the response with these fields replaced by a note.
     */
    replayRedacts?: string[];
    /**
     * Fills what `replayRedacts` left out back into a replayed response from the current state (a webhook
     * endpoint's secret), so that a client retrying after a lost answer gets something it can use, not a note.
     */
    replayRestore?: (request: FastifyRequest, body: string) => Promise<string>;
    /**
     * The paths `expand[]` may name here (a list's take the `data.` prefix too). A merchant route without it
     * expands nothing and refuses any path, so that an expansion asked for is never silently left out.
     */
    expandable?: readonly string[];
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
