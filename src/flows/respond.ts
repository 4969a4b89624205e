import type { Kysely } from 'kysely';
import type { CofferError } from '../domain/errors.ts';
import type { PaymentIntentRelated } from '../objects/payment-intent.ts';
import type { Database, PaymentIntentRow } from '../store/database.ts';
import type { Outcome, Tx } from './context.ts';

/** What a PaymentIntent flow ends with: the object, and the error to report if the attempt failed. */
export interface PaymentIntentResult {
  paymentIntent: PaymentIntentRow;
  error?: CofferError;
}

/**
 * Turns a flow's result into the HTTP response. Supplied by the API layer, which knows the version and the
 * expansions asked for. Either way, the response an idempotent retry replays is committed together with the
 * effects it describes.
 */
export interface Respond {
  /** Renders (reading what it embeds) and stores the response with the idempotency key, in `tx`. */
  (tx: Tx | Kysely<Database>, result: PaymentIntentResult): Promise<Outcome>;
  /** Renders from rows the flow already holds, reading nothing; the flow stores it in its own statement. */
  render(result: PaymentIntentResult, related: PaymentIntentRelated): Outcome;
  /**
   * True when the request expands what only the written change can show (the charge's balance transaction, which
   * the ledger makes): the flow then writes its change first and calls the responder after it, in the same
   * transaction, instead of rendering ahead with `render`.
   */
  readonly rendersAfterChange?: boolean;
}

/**
 * For a flow run on behalf of another (a review's capture, the checkout page's confirmation, an expiry's cancel):
 * renders nothing, and keeps the last result, so that the caller can read the PaymentIntent and the error.
 */
export function keepingResponder(): { respond: Respond; last: () => PaymentIntentResult | undefined } {
  let last: PaymentIntentResult | undefined;
  const keep = (result: PaymentIntentResult): Outcome => {
    last = result;
    return { statusCode: 200, body: '' };
  };
  const respond: Respond = Object.assign(async (_tx: Tx | Kysely<Database>, result: PaymentIntentResult) => keep(result), { render: keep });
  return { respond, last: () => last };
}
