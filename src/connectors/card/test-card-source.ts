import { Secret } from '../../platform/secret.ts';
import { cardFactsOf, type PaymentMethodRow } from '../../store/database.ts';
import type { CardSource } from '../card-source.ts';
import type { CardData } from '../connector.ts';
import { testPaymentMethods } from './test-cards.ts';

/** In test mode the card number behind a `pm_card_…` method is the sandbox's published test card. */
export const testCardSource: CardSource = {
  async cardFor(paymentMethod: PaymentMethodRow): Promise<CardData | undefined> {
    if (paymentMethod.livemode || paymentMethod.test_card === null) return undefined;
    const number = testPaymentMethods[paymentMethod.test_card];
    if (number === undefined) return undefined;
    const card = cardFactsOf(paymentMethod);
    return { number: new Secret(number), expMonth: card.exp_month, expYear: card.exp_year };
  },
};
