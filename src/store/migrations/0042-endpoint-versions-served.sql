-- Stripe API versions 2020-08-27 and 2022-08-01 are no longer served: their PaymentIntents carry their charges,
-- which Coffer does not render. Endpoints pinned to them have always received the 2024-04-10 shape under the old
-- label; they are relabelled 2022-11-15, the oldest version served, whose shape is the one they receive, so that
-- the label on every delivery says what the payload is. The merchant sees the new version on the endpoint.
UPDATE webhook_endpoints SET api_version = '2022-11-15' WHERE api_version IN ('2020-08-27', '2022-08-01');
