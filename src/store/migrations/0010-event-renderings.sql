-- Events in the API version each webhook endpoint asks for. An event is rendered in the merchant's default
-- version (payload); when the merchant has an endpoint whose version has the other shape (before or after
-- 2025-03-31), the event also keeps that rendering (other_payload). The application always sends both; this
-- trigger drops the other one when no endpoint needs it, so it costs nothing to merchants who do not use it,
-- and the decision is taken in the inserting transaction, against the endpoints it sees.
ALTER TABLE webhook_endpoints ADD COLUMN api_shape text CHECK (api_shape IN ('current', 'legacy'));
UPDATE webhook_endpoints SET api_shape = CASE WHEN api_version IS NULL THEN NULL
  WHEN left(api_version, 10) < '2025-03-31' THEN 'legacy' ELSE 'current' END;

ALTER TABLE events ADD COLUMN other_shape text CHECK (other_shape IN ('current', 'legacy'));
ALTER TABLE events ADD COLUMN other_payload json;
ALTER TABLE events ADD CONSTRAINT events_other_rendering CHECK ((other_shape IS NULL) = (other_payload IS NULL));

CREATE FUNCTION events_keep_needed_rendering() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.other_shape IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM webhook_endpoints w
    WHERE w.merchant_id = NEW.merchant_id AND w.livemode = NEW.livemode AND w.deleted_at IS NULL AND w.api_shape = NEW.other_shape
  ) THEN
    NEW.other_shape := NULL;
    NEW.other_payload := NULL;
  END IF;
  RETURN NEW;
END $$;

CREATE TRIGGER events_keep_needed_rendering BEFORE INSERT ON events
  FOR EACH ROW EXECUTE FUNCTION events_keep_needed_rendering();
