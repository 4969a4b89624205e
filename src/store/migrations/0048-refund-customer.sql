-- A refund names the customer and the payment method of the charge it refunds, as Stripe's does (`customer`,
-- `payment_method`), copied from the charge when the refund is made. Refunds made before this column show none, as
-- they did: filling them in would update every refund under the lock this ALTER takes.
ALTER TABLE refunds ADD COLUMN customer_id text;
ALTER TABLE refunds ADD COLUMN payment_method_id text;
