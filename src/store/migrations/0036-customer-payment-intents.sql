-- A customer's PaymentIntents (`GET /v1/payment_intents?customer=`) and charges (`GET /v1/charges?customer=`),
-- newest first, without walking the merchant's other payments. Partial: payments without a customer (most of a
-- shop's guest checkouts) add no entry.
CREATE INDEX IF NOT EXISTS payment_intents_customer ON payment_intents (customer_id, seq) WHERE customer_id IS NOT NULL;
