/**
 * The PaymentIntent state machine: Stripe's statuses, and the one table that says which event moves which status
 * where. Nothing else in Coffer changes a PaymentIntent's status; flows ask `transition` and persist its answer.
 * `docs/payment-intent-states.md` is generated from this table (`npm run docs:states`).
 */
export const paymentIntentStatuses = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
  'requires_capture',
  'succeeded',
  'canceled',
] as const;
export type PaymentIntentStatus = (typeof paymentIntentStatuses)[number];

export const paymentIntentEvents = [
  /** A payment method is set by update or confirm. */
  'attach_payment_method',
  /** Confirmation starts an attempt at the provider. */
  'confirm',
  /** The provider authorized and Coffer holds the funds for a later capture. */
  'authorized',
  /** The provider authorized and captured in one step (automatic capture). */
  'authorized_and_captured',
  /** The provider declined the attempt, or it failed for good. */
  'attempt_failed',
  /** The provider needs the shopper to act (3-D Secure, a redirect). */
  'action_required',
  /** The shopper finished the action; the attempt continues at the provider. */
  'action_completed',
  /** The hold is raised to a higher amount before capture (an incremental authorization); the status stays. */
  'increment_authorization',
  /** The held funds are captured, fully or partly. */
  'capture',
  /** The merchant or Coffer cancels; any hold is released. */
  'cancel',
  /** The hold lapsed before capture. */
  'authorization_expired',
] as const;
export type PaymentIntentEvent = (typeof paymentIntentEvents)[number];

type Table = { readonly [S in PaymentIntentStatus]: Partial<Readonly<Record<PaymentIntentEvent, PaymentIntentStatus>>> };

export const paymentIntentTransitions: Table = {
  requires_payment_method: {
    attach_payment_method: 'requires_confirmation',
    cancel: 'canceled',
  },
  requires_confirmation: {
    attach_payment_method: 'requires_confirmation',
    confirm: 'processing',
    cancel: 'canceled',
  },
  requires_action: {
    attach_payment_method: 'requires_confirmation',
    action_completed: 'processing',
    authorized: 'requires_capture',
    authorized_and_captured: 'succeeded',
    attempt_failed: 'requires_payment_method',
    cancel: 'canceled',
  },
  processing: {
    authorized: 'requires_capture',
    authorized_and_captured: 'succeeded',
    attempt_failed: 'requires_payment_method',
    action_required: 'requires_action',
  },
  requires_capture: {
    increment_authorization: 'requires_capture',
    capture: 'succeeded',
    cancel: 'canceled',
    authorization_expired: 'canceled',
  },
  succeeded: {},
  canceled: {},
};

export type TransitionResult =
  | { ok: true; status: PaymentIntentStatus }
  | { ok: false; from: PaymentIntentStatus; event: PaymentIntentEvent };

export function transition(from: PaymentIntentStatus, event: PaymentIntentEvent): TransitionResult {
  const status = paymentIntentTransitions[from][event];
  return status === undefined ? { ok: false, from, event } : { ok: true, status };
}

export function isTerminal(status: PaymentIntentStatus): boolean {
  return Object.keys(paymentIntentTransitions[status]).length === 0;
}

/** The statuses from which `event` is allowed, for error messages ("…status must be one of …"). */
export function statusesAllowing(event: PaymentIntentEvent): PaymentIntentStatus[] {
  return paymentIntentStatuses.filter((status) => paymentIntentTransitions[status][event] !== undefined);
}
