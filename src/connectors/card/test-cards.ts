/**
 * The card sandbox's published test cards: Stripe's documented numbers and outcomes
 * (docs.stripe.com/testing), so that integrations written against Stripe's test mode behave the same here. The
 * sandbox decides by card number, as an acquirer would; Coffer's `pm_card_…` ids name these cards.
 */
export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'diners' | 'jcb' | 'unionpay';

export type TestCardBehaviour =
  | {
      kind: 'approve';
      availableImmediately: boolean;
      refundFails?: boolean;
      /** The issuer's checks of the security code and the billing address (Stripe's check-failure test cards). */
      checks?: { cvc?: 'fail'; addressLine1?: 'pass' | 'fail' | 'unavailable'; postalCode?: 'pass' | 'fail' | 'unavailable' };
      /** Why the cardholder disputes: `fraudulent` unless said otherwise. */
      disputeReason?: 'product_not_received';
      /** A dispute is opened after capture: a chargeback, or an inquiry that withdraws nothing unless escalated. */
      disputesAfterCapture?: 'chargeback' | 'inquiry';
    }
  | {
      kind: 'decline';
      code: 'card_declined' | 'expired_card' | 'incorrect_cvc' | 'processing_error';
      declineCode: string;
      message: string;
      param: string | null;
      adviceCode: string | null;
    }
  | { kind: 'block' };

/**
 * What the issuer's access control server does with 3-D Secure for the card (Stripe's 3-D Secure test cards):
 * - `not_supported`: the card is not enrolled, it is never authenticated (Amex in this sandbox);
 * - `optional`: supported, not required: authenticated without a challenge when the merchant asks (`any`);
 * - `optional_error`: supported, not required, but asking for it fails with a technical error (transStatus U), and
 *   the payment then proceeds without it (4000000000003097);
 * - `required_unless_set_up`: a challenge unless the card was set up for later payments (4000002500003155);
 * - `required`: a challenge on every payment, whatever the merchant asked;
 * - `required_lookup_error`: required, but the authentication request fails, so the payment is declined
 *   `processing_error` (4000008400001280).
 * The issuer's `behaviour` then decides the authorization that follows a successful authentication.
 */
export type ThreeDSecureSupport =
  | 'not_supported' | 'optional' | 'optional_error' | 'required_unless_set_up' | 'required' | 'required_lookup_error';

export interface TestCard {
  number: string;
  brand: CardBrand;
  funding: 'credit' | 'debit' | 'prepaid';
  country: string;
  behaviour: TestCardBehaviour;
  /** Absent: `not_supported` for Amex (whose payment methods say `three_d_secure_usage.supported: false`), else `optional`. */
  threeDSecure?: ThreeDSecureSupport;
}

export function threeDSecureSupportOf(card: TestCard): ThreeDSecureSupport {
  return card.threeDSecure ?? (card.brand === 'amex' ? 'not_supported' : 'optional');
}

const approve: TestCardBehaviour = { kind: 'approve', availableImmediately: false };

function decline(
  declineCode: string,
  message = 'Your card was declined.',
  adviceCode: string | null = 'try_again_later',
): TestCardBehaviour {
  return { kind: 'decline', code: 'card_declined', declineCode, message, param: null, adviceCode };
}

/** A US Visa credit card of Stripe's 3-D Secure set. */
function threeDSecureCard(number: string, threeDSecure: ThreeDSecureSupport, behaviour: TestCardBehaviour = approve): TestCard {
  return { number, brand: 'visa', funding: 'credit', country: 'US', behaviour, threeDSecure };
}

const cards: TestCard[] = [
  { number: '4242424242424242', brand: 'visa', funding: 'credit', country: 'US', behaviour: approve },
  { number: '4000056655665556', brand: 'visa', funding: 'debit', country: 'US', behaviour: approve },
  { number: '5555555555554444', brand: 'mastercard', funding: 'credit', country: 'US', behaviour: approve },
  { number: '5200828282828210', brand: 'mastercard', funding: 'debit', country: 'US', behaviour: approve },
  { number: '5105105105105100', brand: 'mastercard', funding: 'prepaid', country: 'US', behaviour: approve },
  { number: '378282246310005', brand: 'amex', funding: 'credit', country: 'US', behaviour: approve },
  { number: '6011111111111117', brand: 'discover', funding: 'credit', country: 'US', behaviour: approve },
  { number: '3056930009020004', brand: 'diners', funding: 'credit', country: 'US', behaviour: approve },
  { number: '3566002020360505', brand: 'jcb', funding: 'credit', country: 'JP', behaviour: approve },
  { number: '6200000000000005', brand: 'unionpay', funding: 'credit', country: 'CN', behaviour: approve },
  {
    number: '4000000000000077',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: { kind: 'approve', availableImmediately: true },
  },
  {
    number: '4000000000000259',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: { kind: 'approve', availableImmediately: false, disputesAfterCapture: 'chargeback' },
  },
  {
    number: '4000000000001976',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: { kind: 'approve', availableImmediately: false, disputesAfterCapture: 'inquiry' },
  },
  {
    number: '4000000000005126',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: { kind: 'approve', availableImmediately: false, refundFails: true },
  },
  { number: '4000000000009235', brand: 'visa', funding: 'credit', country: 'US', behaviour: approve },
  {
    number: '4000000000002685',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: { kind: 'approve', availableImmediately: false, disputesAfterCapture: 'chargeback', disputeReason: 'product_not_received' },
  },
  { number: '4000000760000002', brand: 'visa', funding: 'credit', country: 'BR', behaviour: { kind: 'approve', availableImmediately: true } },
  // Approved, with a check that failed (or could not be made): what the merchant's risk rules decide on.
  { number: '4000000000000101', brand: 'visa', funding: 'credit', country: 'US', behaviour: { ...approve, checks: { cvc: 'fail' } } },
  { number: '4000000000000010', brand: 'visa', funding: 'credit', country: 'US', behaviour: { ...approve, checks: { addressLine1: 'fail', postalCode: 'fail' } } },
  { number: '4000000000000028', brand: 'visa', funding: 'credit', country: 'US', behaviour: { ...approve, checks: { addressLine1: 'fail', postalCode: 'pass' } } },
  { number: '4000000000000036', brand: 'visa', funding: 'credit', country: 'US', behaviour: { ...approve, checks: { addressLine1: 'pass', postalCode: 'fail' } } },
  { number: '4000000000000044', brand: 'visa', funding: 'credit', country: 'US', behaviour: { ...approve, checks: { addressLine1: 'unavailable', postalCode: 'unavailable' } } },
  { number: '4000000000000002', brand: 'visa', funding: 'credit', country: 'US', behaviour: decline('generic_decline') },
  { number: '4000000000000341', brand: 'visa', funding: 'credit', country: 'US', behaviour: decline('generic_decline') },
  {
    number: '4000000000009995',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: decline('insufficient_funds', 'Your card has insufficient funds.'),
  },
  {
    number: '4000000000009987',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: decline('lost_card', 'Your card was declined.', 'do_not_try_again'),
  },
  {
    number: '4000000000009979',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: decline('stolen_card', 'Your card was declined.', 'do_not_try_again'),
  },
  {
    number: '4000000000006975',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: decline(
      'card_velocity_exceeded',
      'Your card was declined for making repeated attempts too frequently or exceeding its amount limit.',
    ),
  },
  {
    number: '4000000000000069',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: {
      kind: 'decline',
      code: 'expired_card',
      declineCode: 'expired_card',
      message: 'Your card has expired.',
      param: 'exp_month',
      adviceCode: 'confirm_card_data',
    },
  },
  {
    number: '4000000000000127',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: {
      kind: 'decline',
      code: 'incorrect_cvc',
      declineCode: 'incorrect_cvc',
      message: "Your card's security code is incorrect.",
      param: 'cvc',
      adviceCode: 'confirm_card_data',
    },
  },
  {
    number: '4000000000000119',
    brand: 'visa',
    funding: 'credit',
    country: 'US',
    behaviour: {
      kind: 'decline',
      code: 'processing_error',
      declineCode: 'processing_error',
      message: 'An error occurred while processing your card. Try again in a little bit.',
      param: null,
      adviceCode: 'try_again_later',
    },
  },
  { number: '4100000000000019', brand: 'visa', funding: 'credit', country: 'US', behaviour: { kind: 'block' } },
  { number: '4000000000004954', brand: 'visa', funding: 'credit', country: 'US', behaviour: { kind: 'block' } },
  threeDSecureCard('4000002760003184', 'required'),
  threeDSecureCard('4000002500003155', 'required_unless_set_up'),
  threeDSecureCard('4000000000003220', 'required'),
  threeDSecureCard('4000008260003178', 'required', decline('insufficient_funds', 'Your card has insufficient funds.')),
  threeDSecureCard('4000008400001629', 'required', decline('generic_decline')),
  threeDSecureCard('4000008400001280', 'required_lookup_error'),
  threeDSecureCard('4000000000003055', 'optional'),
  threeDSecureCard('4000000000003097', 'optional_error'),
];

export const testCardsByNumber: ReadonlyMap<string, TestCard> = new Map(cards.map((card) => [card.number, card]));

/** Stripe's test PaymentMethod ids, current and older spellings, and the card each stands for. */
export const testPaymentMethods: Readonly<Record<string, string>> = {
  pm_card_visa: '4242424242424242',
  pm_card_us: '4242424242424242',
  pm_card_visa_debit: '4000056655665556',
  pm_card_mastercard: '5555555555554444',
  pm_card_mastercard_debit: '5200828282828210',
  pm_card_mastercard_prepaid: '5105105105105100',
  pm_card_amex: '378282246310005',
  pm_card_discover: '6011111111111117',
  pm_card_diners: '3056930009020004',
  pm_card_jcb: '3566002020360505',
  pm_card_unionpay: '6200000000000005',
  pm_card_bypassPending: '4000000000000077',
  pm_card_createDispute: '4000000000000259',
  pm_card_createDisputeInquiry: '4000000000001976',
  pm_card_createDisputeProductNotReceived: '4000000000002685',
  pm_card_bypassPendingInternational: '4000000760000002',
  pm_card_cvcCheckFail: '4000000000000101',
  pm_card_avsFail: '4000000000000010',
  pm_card_avsLine1Fail: '4000000000000028',
  pm_card_avsZipFail: '4000000000000036',
  pm_card_avsUnchecked: '4000000000000044',
  pm_card_refundFail: '4000000000005126',
  pm_card_riskLevelElevated: '4000000000009235',
  pm_card_chargeDeclined: '4000000000000002',
  pm_card_visa_chargeDeclined: '4000000000000002',
  pm_card_chargeCustomerFail: '4000000000000341',
  pm_card_chargeDeclinedInsufficientFunds: '4000000000009995',
  pm_card_visa_chargeDeclinedInsufficientFunds: '4000000000009995',
  pm_card_chargeDeclinedLostCard: '4000000000009987',
  pm_card_visa_chargeDeclinedLostCard: '4000000000009987',
  pm_card_chargeDeclinedStolenCard: '4000000000009979',
  pm_card_visa_chargeDeclinedStolenCard: '4000000000009979',
  pm_card_chargeDeclinedVelocityLimitExceeded: '4000000000006975',
  pm_card_visa_chargeDeclinedVelocityLimitExceeded: '4000000000006975',
  pm_card_chargeDeclinedExpiredCard: '4000000000000069',
  pm_card_chargeDeclinedIncorrectCvc: '4000000000000127',
  pm_card_chargeDeclinedProcessingError: '4000000000000119',
  pm_card_radarBlock: '4100000000000019',
  pm_card_chargeDeclinedFraudulent: '4100000000000019',
  pm_card_riskLevelHighest: '4000000000004954',
  pm_card_authenticationRequired: '4000002760003184',
  pm_card_authenticationRequiredOnSetup: '4000002500003155',
  pm_card_threeDSecure2Required: '4000000000003220',
  pm_card_authenticationRequiredChargeDeclinedInsufficientFunds: '4000008260003178',
  pm_card_threeDSecureRequiredChargeDeclined: '4000008400001629',
  pm_card_threeDSecureRequiredProcessingError: '4000008400001280',
  pm_card_threeDSecureOptional: '4000000000003055',
  pm_card_threeDSecureOptionalProcessingError: '4000000000003097',
  pm_card_amex_threeDSecureNotSupported: '378282246310005',
};

/** Test cards expire in December of this year, far enough ahead, as Stripe's docs suggest ("12/34"). */
export const testCardExpiry = { month: 12, year: 2034 };
