-- A payment method detached from its customer (or whose customer was deleted) can no longer pay or be saved again,
-- as at Stripe: the merchant took it away. Its first PaymentIntent (migration 0037) does not say so for a card
-- that was saved and never charged, so the detachment is kept here.
ALTER TABLE payment_methods ADD COLUMN detached_at timestamptz;
