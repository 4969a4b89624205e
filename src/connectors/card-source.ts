import type { PaymentMethodRow } from '../store/database.ts';
import type { CardData } from './connector.ts';

/**
 * Where a card's number comes from when an attempt is sent to the acquirer: the sandbox's published test cards
 * in test mode, the vault for stored cards. Only the connector call sees the result, and never stores it.
 */
export interface CardSource {
  cardFor(paymentMethod: PaymentMethodRow): Promise<CardData | undefined>;
}
