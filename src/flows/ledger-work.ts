import type { TransferCommand } from '../domain/ledger.ts';
import { applyTransfers, type TransferContext } from '../store/ledger.ts';
import type { Tx } from './context.ts';

/** The ledger transfers a change makes, applied by `finishWithLedger`. */
export interface LedgerWork {
  context: TransferContext;
  transfers: TransferCommand[];
}

/**
 * Ends a flow's transaction: everything else first (events, audit, the response), the ledger last. The ledger
 * locks the merchant's accounts, which every payment of that merchant needs; taking them just before COMMIT
 * keeps them held for one statement and the commit, not for the whole transaction.
 */
export async function finishWithLedger<T>(tx: Tx, ledger: LedgerWork, finish: () => Promise<T> | T, ledgerFirst = false): Promise<T> {
  // A response that shows what the ledger writes (a balance transaction it expands) is rendered after it.
  if (ledgerFirst) {
    await applyTransfers(tx, ledger.context, ledger.transfers);
    return finish();
  }
  const result = await finish();
  await applyTransfers(tx, ledger.context, ledger.transfers);
  return result;
}
