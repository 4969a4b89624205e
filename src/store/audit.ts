import { newId } from '../platform/random.ts';
import type { Insertable, Kysely } from 'kysely';
import type { Tx } from '../flows/context.ts';
import type { AuditLogTable, Database } from './database.ts';

export interface AuditInput {
  merchantId: string | null;
  livemode: boolean | null;
  actorType: 'api_key' | 'staff' | 'system' | 'shopper';
  actorId: string;
  action: string;
  objectType: string | null;
  objectId: string | null;
  outcome: 'success' | 'failure';
  requestId: string | null;
  origin: string | null;
  details?: Record<string, unknown>;
  occurredAt: Date;
}

/**
 * Appends an audit record in the caller's transaction, so it exists exactly when the action took effect; a
 * refusal that changed nothing is recorded on its own (`db`).
 */
export async function recordAudit(tx: Tx | Kysely<Database>, input: AuditInput): Promise<void> {
  await tx.insertInto('audit_log').values(auditRow(input)).execute();
}

export function auditRow(input: AuditInput): Insertable<AuditLogTable> {
  return {
      id: newId('aud'),
      occurred_at: input.occurredAt,
      merchant_id: input.merchantId,
      livemode: input.livemode,
      actor_type: input.actorType,
      actor_id: input.actorId,
      action: input.action,
      object_type: input.objectType,
      object_id: input.objectId,
      outcome: input.outcome,
      request_id: input.requestId,
      origin: input.origin,
    details: JSON.stringify(input.details ?? {}),
  };
}
