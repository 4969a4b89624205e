import type { Kysely } from 'kysely';
import { CofferError, resourceMissing } from '../domain/errors.ts';
import type { Tx } from '../flows/context.ts';
import { inTransaction } from '../flows/transaction.ts';
import { limits } from '../limits.ts';
import { newId } from '../platform/random.ts';
import type { ApprovalAction, Database, StaffApprovalRow, StaffUserRow } from '../store/database.ts';
import { roleAllows, type StaffPermission } from './roles.ts';
import { staffAudit, type StaffOrigin } from './staff.ts';

/**
 * Four-eyes approval. A sensitive action asked for by one person is stored as a pending approval and takes effect
 * only when a second person approves it: someone else than the requester, whose role both decides approvals and
 * may do the action itself, before the request expires (24 hours). Each step is audited.
 */
export const approvalPermission: Readonly<Record<ApprovalAction, StaffPermission>> = {
  'refund.create': 'refunds.create',
  'api_key.create': 'api_keys.create',
  'staff.invite': 'staff.invite',
  'staff.role_change': 'staff.change_role',
  'limit.change': 'limits.change',
  'rule_set.change': 'rules.change',
};

/**
 * The parameters of a request without the hashes of the secrets its requester was given (an API key's, an
 * enrollment code's), which the action checks when it runs and which nothing shows: not the approvals, not the
 * audit log (decision 0039).
 */
export function withoutSecretHashes(params: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(params).filter(([name]) => name !== 'prepared_key' && name !== 'enrollment_code_sha256'));
}

export async function requestApproval(
  tx: Tx,
  requester: StaffUserRow,
  request: { action: ApprovalAction; params: Record<string, unknown>; summary: string; merchantId?: string | null },
  origin: StaffOrigin,
  now: Date,
): Promise<StaffApprovalRow> {
  const approval = await tx.insertInto('staff_approvals').values({
    id: newId('apr'),
    action: request.action,
    params: JSON.stringify(request.params),
    summary: request.summary,
    requested_by: requester.id,
    requested_at: now,
    expires_at: new Date(now.getTime() + limits.approvalLifetimeMs),
    status: 'pending',
    decided_by: null,
    decided_at: null,
    result: null,
  }).returningAll().executeTakeFirstOrThrow();
  await staffAudit(tx, origin, now, {
    actorId: requester.id, action: 'approval.request', objectType: 'approval', objectId: approval.id, merchantId: request.merchantId ?? null,
    // Without the hashes of the secrets the requester was given (shown nowhere; see staff-routes' shownParams).
    details: { requested_action: request.action, params: withoutSecretHashes(request.params) },
  });
  return approval;
}

/**
 * How an approved action takes effect: in the approval's transaction, so that a decision recorded is an action
 * done (or, for a refund, bound to be done: its pending row commits with the decision and the acquirer is asked
 * after). Nothing is left "approved" by a process that stops in between.
 */
export type ApprovalExecutor = (tx: Tx, approval: StaffApprovalRow, approver: StaffUserRow) => Promise<ActionResult>;

/** What an action produced: `result` is kept on the approval; `shownOnce` (a new key, a link) only in the response. */
export interface ActionResult {
  result: Record<string, unknown>;
  shownOnce?: Record<string, unknown>;
}

export interface Decided {
  approval: StaffApprovalRow;
  shownOnce: Record<string, unknown> | undefined;
}

async function refuse(db: Kysely<Database>, origin: StaffOrigin, now: Date, approver: StaffUserRow, approval: StaffApprovalRow, decision: string, error: CofferError): Promise<never> {
  await staffAudit(db, origin, now, {
    actorId: approver.id, action: `approval.${decision}`, outcome: 'failure', objectType: 'approval', objectId: approval.id, details: { reason: error.code, requested_action: approval.action },
  });
  throw error;
}

/**
 * Approves or rejects a pending request. An approval runs the action (`executor`); its result, or the reason it
 * failed (the request is then `failed`), is kept on the approval. Refusals (self-approval, a role that may not decide) are audited and change nothing.
 */
export async function decideApproval(
  db: Kysely<Database>,
  approver: StaffUserRow,
  approvalId: string,
  decision: 'approve' | 'reject',
  executor: (approval: StaffApprovalRow) => ApprovalExecutor,
  origin: StaffOrigin,
  now: Date,
): Promise<Decided> {
  const found = await db.selectFrom('staff_approvals').selectAll().where('id', '=', approvalId).executeTakeFirst();
  if (found === undefined) throw resourceMissing('approval', approvalId, 'approval');
  if (found.requested_by === approver.id) {
    await refuse(db, origin, now, approver, found, decision, new CofferError('approval_self_decision', 'Four-eyes approval: a request must be approved or rejected by someone other than the person who made it.'));
  }
  if (!roleAllows(approver.role, approvalPermission[found.action])) {
    await refuse(db, origin, now, approver, found, decision, new CofferError('insufficient_permissions', `Your role (${approver.role}) may not decide a request to ${found.action}: it needs the permission ${approvalPermission[found.action]}.`));
  }
  const run = executor(found);
  let shownOnce: Record<string, unknown> | undefined;
  try {
    // Retried on a deadlock or serialization failure: a refund's decision also locks the charge.
    const decided = await inTransaction(db, async (tx) => {
      const approval = await tx.selectFrom('staff_approvals').selectAll().where('id', '=', approvalId).forUpdate().executeTakeFirstOrThrow();
      if (approval.status !== 'pending') throw new CofferError('approval_unexpected_state', `This request was already decided (status ${approval.status}).`);
      if (approval.expires_at <= now) throw new CofferError('approval_unexpected_state', 'This request expired before it was approved; ask again.');
      if (decision === 'approve') {
        // The requester may hold the action's secret from the request (an API key): a request from someone since
        // disabled, or whose role no longer allows the action, does not run.
        const requester = await tx.selectFrom('staff_users').select(['status', 'role']).where('id', '=', approval.requested_by).executeTakeFirst();
        if (requester === undefined || requester.status !== 'active' || !roleAllows(requester.role, approvalPermission[approval.action])) {
          throw new CofferError('parameter_invalid', 'The person who asked for this is no longer active, or their role no longer allows it: the request cannot run.');
        }
      }
      const outcome = decision === 'approve' ? await run(tx, approval, approver) : null;
      const result = outcome?.result ?? null;
      shownOnce = outcome?.shownOnce;
      const updated = await tx.updateTable('staff_approvals')
        .set({ status: decision === 'reject' ? 'rejected' : 'executed', decided_by: approver.id, decided_at: now, result: result === null ? null : JSON.stringify(result) })
        .where('id', '=', approval.id).returningAll().executeTakeFirstOrThrow();
      await staffAudit(tx, origin, now, {
        actorId: approver.id, action: `approval.${decision}`, objectType: 'approval', objectId: approval.id,
        details: { requested_action: approval.action, requested_by: approval.requested_by, ...(result === null ? {} : { result }) },
      });
      return updated;
    });
    return { approval: decided, shownOnce };
  } catch (error) {
    if (error instanceof CofferError && error.code !== 'approval_unexpected_state') {
      // The action itself was refused (say, the refund is larger than what is left): nothing happened. The request
      // is closed as failed, with the reason, for everyone to see; asking again is a new request. A refusal that
      // may pass on a retry (a conflict, a lock, an outage: 409, 429, 5xx), or with another approver (403: only an
      // owner may approve making someone an owner), or one that holds only while other work is in progress (a refund
      // larger than what refunds not yet settled leave), leaves it pending.
      const final = [400, 402, 404].includes(error.httpStatus) && error.details.mayPassLater !== true;
      // The request's closing and its audit record commit together.
      await db.transaction().execute(async (tx) => {
        const closed = final && (await tx.updateTable('staff_approvals')
          .set({ status: 'failed', decided_by: approver.id, decided_at: now, result: JSON.stringify({ error: { code: error.code, message: error.message } }) })
          .where('id', '=', approvalId).where('status', '=', 'pending').executeTakeFirst()).numUpdatedRows > 0n;
        await staffAudit(tx, origin, now, {
          actorId: approver.id, action: `approval.${decision}`, outcome: 'failure', objectType: 'approval', objectId: approvalId,
          details: { reason: error.code, status: closed ? 'failed' : 'pending' },
        });
      });
    }
    throw error;
  }
}
