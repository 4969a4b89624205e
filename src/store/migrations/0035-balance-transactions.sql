-- Stripe's balance transactions are read from the ledger (src/flows/balance-transactions.ts): one for each transfer
-- that changes what the merchant is owed. A transaction's id is txn_ followed by this digest of its source (the
-- key's first part: a charge, refund, dispute or customer balance transaction) and its reason, so that the objects
-- citing it know its id without reading the ledger, and the ledger finds it by this index. IF NOT EXISTS: on a large
-- ledger an operator builds both indexes beforehand with CREATE INDEX CONCURRENTLY (decision 0022).
CREATE INDEX IF NOT EXISTS ledger_transfers_balance_transaction ON ledger_transfers
  ((left(encode(sha256((split_part(transfer_key, ':', 1) || ':' || reason)::bytea), 'hex'), 24)))
  WHERE reason IN ('capture', 'refund', 'refund_failure', 'dispute', 'dispute_reinstatement', 'customer_credit', 'customer_debit');
-- A merchant's list, newest first, without walking every other merchant's transfers.
CREATE INDEX IF NOT EXISTS ledger_transfers_balance_transactions_listed ON ledger_transfers (merchant_id, livemode, id)
  WHERE reason IN ('capture', 'refund', 'refund_failure', 'dispute', 'dispute_reinstatement', 'customer_credit', 'customer_debit');
