/**
 * The SetupIntent state machine (saving a card for later payments): Stripe's statuses and the one table of
 * moves between them. No money moves; a successful setup saves the payment method to its customer.
 */
export const setupIntentStatuses = [
  'requires_payment_method',
  'requires_confirmation',
  'requires_action',
  'processing',
  'succeeded',
  'canceled',
] as const;
export type SetupIntentStatus = (typeof setupIntentStatuses)[number];

export const setupIntentEvents = ['attach_payment_method', 'confirm', 'verified', 'verification_failed', 'action_required', 'action_completed', 'cancel'] as const;
export type SetupIntentEvent = (typeof setupIntentEvents)[number];

export const setupIntentTransitions: { readonly [S in SetupIntentStatus]: Partial<Readonly<Record<SetupIntentEvent, SetupIntentStatus>>> } = {
  requires_payment_method: { attach_payment_method: 'requires_confirmation', cancel: 'canceled' },
  requires_confirmation: { attach_payment_method: 'requires_confirmation', confirm: 'processing', cancel: 'canceled' },
  requires_action: { attach_payment_method: 'requires_confirmation', action_completed: 'processing', cancel: 'canceled' },
  processing: { verified: 'succeeded', verification_failed: 'requires_payment_method', action_required: 'requires_action' },
  succeeded: {},
  canceled: {},
};

export function setupTransition(from: SetupIntentStatus, event: SetupIntentEvent): SetupIntentStatus | undefined {
  return setupIntentTransitions[from][event];
}
