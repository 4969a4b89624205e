-- `GET /v1/charges?customer=` lists the charges made for the customer, by the charge's own customer (migration
-- 0038), which a PaymentIntent whose customer changed between attempts does not rewrite.
--
-- Charges made before 0038 recorded no customer: they take their PaymentIntent's, the best record of who paid that
-- there is. Only those: a charge made since 0038 without a customer was a guest's, and stays one even if its
-- PaymentIntent was given a customer later.
UPDATE charges SET customer_id = payment_intents.customer_id
  FROM payment_intents
  WHERE charges.payment_intent_id = payment_intents.id AND charges.customer_id IS NULL AND payment_intents.customer_id IS NOT NULL
    AND charges.created_at < (SELECT applied_at FROM schema_migrations WHERE version = 38);
-- Partial, as for PaymentIntents: guest charges add no entry. IF NOT EXISTS: on a large table, whose index build
-- here would hold up new charges until it ends, an operator builds it beforehand with CREATE INDEX CONCURRENTLY
-- (decision 0022).
CREATE INDEX IF NOT EXISTS charges_customer ON charges (customer_id, seq) WHERE customer_id IS NOT NULL;
