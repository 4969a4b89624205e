-- A payment method detached from its customer (or whose customer was deleted) can no longer pay or be saved again,
-- as at Stripe: the merchant took it away. Its first PaymentIntent (migration 0037) does not say so for a card
-- that was saved and never charged, so the detachment is kept here.
ALTER TABLE payment_methods ADD COLUMN detached_at timestamptz;
-- Cards detached before this migration: every detach, and every customer deletion, announced each card it took
-- away with a payment_method.detached event (events are kept for good), so those cards are detached from then on.
-- A card attached again since belongs to a customer, and stays usable.
UPDATE payment_methods SET detached_at = detached.at
  FROM (SELECT object_id, max(created_at) AS at FROM events WHERE type = 'payment_method.detached' GROUP BY object_id) AS detached
  WHERE payment_methods.id = detached.object_id AND payment_methods.customer_id IS NULL;
