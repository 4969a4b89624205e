-- The card sandbox's dispute test cards say why the cardholder disputes (Stripe's
-- pm_card_createDisputeProductNotReceived), as the network reports it: the reason and its reason code.
ALTER TABLE sandbox_card_payments ADD COLUMN dispute_reason text NOT NULL DEFAULT 'fraudulent'
  CHECK (dispute_reason IN ('fraudulent', 'product_not_received'));
