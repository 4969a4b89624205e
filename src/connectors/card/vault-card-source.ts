import { cardFactsOf, type PaymentMethodRow } from '../../store/database.ts';
import type { CardVault } from '../../vault/card-vault.ts';
import type { CardSource } from '../card-source.ts';
import type { CardData } from '../connector.ts';
import { testCardSource } from './test-card-source.ts';

/**
 * Where an attempt's card number comes from: the vault for cards given to Coffer, the sandbox's published
 * numbers for Stripe's test PaymentMethod ids.
 */
export function cardSource(vault: CardVault): CardSource {
  return {
    async cardFor(paymentMethod: PaymentMethodRow): Promise<CardData | undefined> {
      if (paymentMethod.vault_card_id !== null) {
        return vault.cardFor(
          paymentMethod.vault_card_id,
          { merchantId: paymentMethod.merchant_id, livemode: paymentMethod.livemode, paymentMethodId: paymentMethod.id },
          cardFactsOf(paymentMethod).exp_month,
          cardFactsOf(paymentMethod).exp_year,
        );
      }
      return testCardSource.cardFor(paymentMethod);
    },
  };
}
