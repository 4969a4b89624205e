import { errorDocUrl, type CofferError } from '../domain/errors.ts';
import { maskCardNumbers } from '../vault/pan-scanner.ts';

/** Stripe's error envelope, plus the id of the request that produced it. Keys are sorted as Stripe sends them. */
export function errorObject(error: CofferError, requestId: string): Record<string, unknown> {
  const details = error.details;
  const body: Record<string, unknown> = {};
  if (details.adviceCode !== undefined) body.advice_code = details.adviceCode;
  if (details.chargeId !== undefined) body.charge = details.chargeId;
  body.code = error.code;
  if (details.declineCode !== undefined) body.decline_code = details.declineCode;
  const docUrl = errorDocUrl(error.code);
  if (docUrl !== undefined) body.doc_url = docUrl;
  // A message may quote what the caller sent (an id from the URL); a card number there is masked.
  body.message = maskCardNumbers(error.message);
  if (details.param !== undefined) body.param = maskCardNumbers(details.param);
  if (details.paymentIntentObject !== undefined) body.payment_intent = details.paymentIntentObject;
  if (details.paymentMethodObject !== undefined) body.payment_method = details.paymentMethodObject;
  body.request_id = requestId;
  if (details.setupIntentObject !== undefined) body.setup_intent = details.setupIntentObject;
  body.type = error.type;
  return { error: body };
}
