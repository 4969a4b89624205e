-- A dispute shows the card brand and network of the charge it disputes (Stripe's
-- payment_method_details.card.brand and .network), copied from the charge when the dispute is opened. Disputes
-- opened before this column show `unknown`, Stripe's value for a brand it cannot name.
ALTER TABLE disputes ADD COLUMN card_brand text;
ALTER TABLE disputes ADD COLUMN card_network text;
