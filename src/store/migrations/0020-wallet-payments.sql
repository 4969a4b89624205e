-- Alipay and WeChat Pay: payment methods that are not cards, charges that wait at the provider for the shopper,
-- and the provider notifications already applied (each provider numbers its own; a repeat is answered, not
-- applied again).
ALTER TABLE payment_methods DROP CONSTRAINT payment_methods_type_check;
ALTER TABLE payment_methods ADD CONSTRAINT payment_methods_type_check CHECK (type IN ('card', 'alipay', 'wechat_pay'));
ALTER TABLE payment_methods ALTER COLUMN card DROP NOT NULL;
ALTER TABLE payment_methods ADD CONSTRAINT payment_methods_card_facts CHECK ((type = 'card') = (card IS NOT NULL));

-- When the provider sync worker next asks the provider about a pending attempt, and how often it has asked
-- (its backoff); when the shopper's time to pay at the provider ends.
ALTER TABLE charges ADD COLUMN provider_sync_at timestamptz;
ALTER TABLE charges ADD COLUMN provider_sync_count integer NOT NULL DEFAULT 0;
ALTER TABLE charges ADD COLUMN action_expires_at timestamptz;
CREATE INDEX charges_provider_sync ON charges (provider_sync_at) WHERE status = 'pending' AND provider_sync_at IS NOT NULL;

CREATE TABLE provider_notifications (
  provider text NOT NULL,
  notification_id text NOT NULL,
  livemode boolean NOT NULL,
  -- Coffer's reference the notification named (a charge or a refund id).
  reference text NOT NULL,
  received_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (provider, notification_id)
);
