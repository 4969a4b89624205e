import type { FastifyReply } from 'fastify';
import { CofferError } from '../../domain/errors.ts';
import type { Actor, Outcome } from '../../flows/context.ts';
import { permits, type ApiResource } from '../../identity/api-keys.ts';

export function sendOutcome(reply: FastifyReply, outcome: Outcome): FastifyReply {
  return reply.code(outcome.statusCode).type('application/json; charset=utf-8').send(outcome.body);
}

export function sendObject(reply: FastifyReply, object: unknown): FastifyReply {
  return sendOutcome(reply, { statusCode: 200, body: JSON.stringify(object) });
}

/** Checks `expand[]` against what the object can expand; on lists, paths start with `data.`. */
export function expansions(requested: readonly string[] | undefined, allowed: readonly string[], list = false): string[] {
  const out: string[] = [];
  for (const path of requested ?? []) {
    const bare = list && path.startsWith('data.') ? path.slice(5) : path;
    if (!allowed.includes(bare)) {
      const here = allowed.length === 0 ? 'nothing can be expanded here' : `what can be expanded here: ${allowed.join(', ')}`;
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

export function listObject(url: string, data: unknown[], hasMore: boolean): Record<string, unknown> {
  return { object: 'list', data, has_more: hasMore, url };
}
