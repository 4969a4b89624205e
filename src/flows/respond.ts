import type { CofferError } from '../domain/errors.ts';
import type { PaymentIntentRow } from '../store/database.ts';
import type { Outcome, Tx } from './context.ts';

/** What a PaymentIntent flow ends with: the object, and the error to report if the attempt failed. */
export interface PaymentIntentResult {
  paymentIntent: PaymentIntentRow;
  error?: CofferError;
}

/**
 * Turns a flow's result into the HTTP response, inside the flow's last transaction, so that the response an
 * idempotent retry replays is committed together with the effects it describes. Supplied by the API layer.
 */
export type Respond = (tx: Tx, result: PaymentIntentResult) => Promise<Outcome>;
