import { sql, type Kysely } from 'kysely';
import type { TransferCommand } from '../domain/ledger.ts';
import type { Tx } from '../flows/context.ts';
import type { Database } from './database.ts';

function toSqlCommand(command: TransferCommand): Record<string, string> {
  switch (command.kind) {
    case 'single':
    case 'pending':
      return {
        kind: command.kind,
        key: command.key,
        debit: command.debit,
        credit: command.credit,
        amount: command.amountMinor.toString(),
        reason: command.reason,
      };
    case 'post_pending':
      return {
        kind: command.kind,
        key: command.key,
        pending_key: command.pendingKey,
        amount: command.amountMinor.toString(),
        reason: command.reason,
      };
    case 'void_pending':
      return { kind: command.kind, key: command.key, pending_key: command.pendingKey, reason: command.reason };
  }
}

export interface TransferContext {
  merchantId: string;
  livemode: boolean;
  currency: string;
  paymentIntentId: string | null;
  chargeId: string | null;
}

/**
 * Applies transfers through the database's `ledger_apply()`, in the caller's transaction and in one round trip.
 * The function enforces the ledger's rules; a violation raises and rolls the whole transaction back.
 */
/** The commands as `ledger_apply()` takes them (amounts as strings, so that no bigint loses precision). */
export function ledgerCommandsJson(commands: TransferCommand[]): string {
  return JSON.stringify(commands.map(toSqlCommand));
}

export async function applyTransfers(tx: Tx, context: TransferContext, commands: TransferCommand[]): Promise<void> {
  if (commands.length === 0) return;
  const payload = ledgerCommandsJson(commands);
  await sql`SELECT ledger_apply(${context.merchantId}, ${context.livemode}, ${context.currency}, ${payload}::jsonb,
    ${context.paymentIntentId}, ${context.chargeId})`.execute(tx);
}

export interface AccountBalanceRow {
  currency: string;
  code: string;
  debits_pending: bigint;
  debits_posted: bigint;
  credits_pending: bigint;
  credits_posted: bigint;
}

export async function merchantAccounts(
  db: Kysely<Database> | Tx,
  merchantId: string,
  livemode: boolean,
): Promise<AccountBalanceRow[]> {
  return db
    .selectFrom('ledger_accounts')
    .select(['currency', 'code', 'debits_pending', 'debits_posted', 'credits_pending', 'credits_posted'])
    .where('merchant_id', '=', merchantId)
    .where('livemode', '=', livemode)
    .orderBy('currency')
    .orderBy('code')
    .execute();
}
