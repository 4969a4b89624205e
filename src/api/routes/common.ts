import { timingSafeEqual } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { CofferError, resourceMissing } from '../../domain/errors.ts';
import { checkOneCursor } from '../../flows/list-page.ts';
import { limits } from '../../limits.ts';
import type { Actor, Outcome, Respond, Tx } from '../../flows/context.ts';
import { permits, type ApiResource } from '../../identity/api-keys.ts';
import { errorObject } from '../../objects/error.ts';
import { assert } from '../../platform/assert.ts';
import { keyInUse } from '../../store/idempotency-keys.ts';
import { requestContext } from '../request-context.ts';
import { ListLimit, ObjectId, strictObject } from '../schemas.ts';

export function sendOutcome(reply: FastifyReply, outcome: Outcome): FastifyReply {
  return reply.code(outcome.statusCode).type('application/json; charset=utf-8').send(outcome.body);
}

export function sendObject(reply: FastifyReply, object: unknown): FastifyReply {
  return sendOutcome(reply, { statusCode: 200, body: JSON.stringify(object) });
}

/** A response as kept for replays: `fields` (a secret shown once) replaced by a note. */
export function redactFields(body: string, fields: readonly string[]): string {
  if (fields.length === 0) return body;
  const object = JSON.parse(body) as Record<string, unknown>;
  for (const field of fields) {
    if (field in object) object[field] = '[shown only in the first response]';
  }
  return JSON.stringify(object);
}

/**
 * Runs a change whose flow answers from inside its own transaction (`Respond`): `render` makes the response from
 * what that transaction sees, and the Idempotency-Key keeps it in the same commit as the change (decision 0027).
 * A crash or a lost connection after the commit then leaves a response to replay, never a change to repeat. The
 * kept response leaves out the route's `replayRedacts` (a secret shown once). An error `render` raises (a card the
 * acquirer declined while it was being saved) is the answer, kept like any other: the change stands. A request
 * whose key a retry took over while it stalled makes no change: its transaction is rolled back with
 * `idempotency_key_in_use`, and the retry answers for the key.
 */
export async function answerInChange<R>(
  request: FastifyRequest,
  change: (respond: Respond<NoInfer<R>>) => Promise<unknown>,
  render: (result: R, tx: Tx) => unknown,
): Promise<Outcome> {
  const ctx = requestContext(request);
  const claim = ctx.idempotency;
  const redacts = request.routeOptions.config.replayRedacts ?? [];
  let answer: Outcome | undefined;
  try {
    await change(async (tx, result) => {
      try {
        answer = { statusCode: 200, body: JSON.stringify(await render(result, tx)) };
      } catch (error) {
        if (!(error instanceof CofferError)) throw error;
        answer = { statusCode: error.httpStatus, body: JSON.stringify(errorObject(error, ctx.requestId)) };
      }
      if (claim !== undefined && !(await claim.complete(tx, { ...answer, body: redactFields(answer.body, redacts) }))) throw keyInUse(claim.key);
    });
  } catch (error) {
    // The transaction that kept the response did not commit (or a later step failed): the error's response is
    // kept instead, as for any request, but never over a response that did commit (see storeResponse).
    if (claim !== undefined) claim.completed = false;
    throw error;
  }
  assert(answer !== undefined, 'the change answered its request');
  return answer;
}

/** A route that answers with a list (or a search result): a read that takes `limit`. Its expansions start with `data.`. */
export function isListRoute(method: string, querystring: unknown): boolean {
  const properties = (querystring as { properties?: Record<string, unknown> } | undefined)?.properties;
  return method === 'GET' && properties !== undefined && 'limit' in properties;
}

/**
 * Checks `expand[]` against what the object can expand, and returns the paths within each object. On a list the
 * paths start with `data.` (the list itself expands nothing), as at Stripe.
 */
export function expansions(requested: readonly string[] | undefined, allowed: readonly string[], list = false): string[] {
  const out: string[] = [];
  for (const path of requested ?? []) {
    const listed = list && path.startsWith('data.');
    const bare = listed ? path.slice(5) : path;
    if (!allowed.includes(bare) || list !== listed) {
      const shown = list ? allowed.map((item) => `data.${item}`) : allowed;
      const here = allowed.length === 0 ? 'nothing can be expanded here' : `what can be expanded here: ${shown.join(', ')}`;
      throw new CofferError('parameter_invalid', `This property cannot be expanded (${path}); ${here}.`, { param: 'expand' });
    }
    out.push(bare);
  }
  return out;
}

/**
 * `expansions` for a key that may be restricted: an expanded object is read from its own resource, so a restricted
 * key needs read permission on that resource too, as on the object's own endpoint.
 */
export function expansionsFor(actor: Actor, requested: readonly string[] | undefined, allowed: Readonly<Record<string, ApiResource | readonly ApiResource[]>>, list = false): string[] {
  const paths = expansions(requested, Object.keys(allowed), list);
  for (const path of paths) {
    const needed = allowed[path] ?? [];
    for (const resource of typeof needed === 'string' ? [needed] : needed) {
      if (actor.keyKind === 'restricted' && !permits(actor.permissions ?? {}, resource, 'read')) {
        throw new CofferError('insufficient_permissions', `This restricted key does not have read permission on ${resource}, which expanding ${path} needs.`, { param: 'expand' });
      }
    }
  }
  return paths;
}

/** A change's parameters without `expand`, which only shapes its answer. */
export function withoutExpand<T extends { expand?: unknown }>(body: T): Omit<T, 'expand'> {
  const { expand: _expand, ...rest } = body;
  return rest;
}

export function listObject(url: string, data: unknown[], hasMore: boolean): Record<string, unknown> {
  return { object: 'list', data, has_more: hasMore, url };
}

/** Compares a presented client secret with the stored one in time that does not depend on where they differ. */
export function sameSecret(presented: string, stored: string): boolean {
  const a = Buffer.from(presented);
  const b = Buffer.from(stored);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The query of a short list kept in order (an order's line items). */
export const PositionalQuery = strictObject({ limit: Type.Optional(ListLimit), starting_after: Type.Optional(ObjectId), ending_before: Type.Optional(ObjectId) });
export interface PositionalQueryParams {
  limit?: number;
  starting_after?: string;
  ending_before?: string;
}

/**
 * A page of a short list kept in its own order (an order's line items), as Stripe pages it: `starting_after` goes
 * on, `ending_before` goes back; a cursor not in the list is refused by name.
 */
export function positionalPage(url: string, items: ReadonlyArray<Record<string, unknown>>, query: PositionalQueryParams): Record<string, unknown> {
  checkOneCursor(query);
  const limit = query.limit ?? limits.listLimitDefault;
  const cursor = query.starting_after ?? query.ending_before;
  const at = cursor === undefined ? -1 : items.findIndex((item) => item.id === cursor);
  if (cursor !== undefined && at === -1) throw resourceMissing('line item', cursor, query.starting_after === undefined ? 'ending_before' : 'starting_after');
  const page = query.ending_before !== undefined ? items.slice(Math.max(0, at - limit), at) : items.slice(at + 1, at + 1 + limit);
  const hasMore = query.ending_before !== undefined ? at - limit > 0 : at + 1 + limit < items.length;
  return listObject(url, page, hasMore);
}
