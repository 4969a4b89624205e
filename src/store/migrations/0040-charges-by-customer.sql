-- `GET /v1/charges?customer=` lists the charges made for the customer, by the charge's own customer (migration
-- 0038), which a PaymentIntent whose customer changed between attempts does not rewrite. Charges made before 0038
-- take their PaymentIntent's customer, the best record of who paid that there is. Partial, as for PaymentIntents:
-- guest charges add no entry.
UPDATE charges SET customer_id = payment_intents.customer_id
  FROM payment_intents
  WHERE charges.payment_intent_id = payment_intents.id AND charges.customer_id IS NULL AND payment_intents.customer_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS charges_customer ON charges (customer_id, seq) WHERE customer_id IS NOT NULL;
