-- A customer's preferred languages, most preferred first (Stripe's preferred_locales), and tax status (tax_exempt).
-- Customers made before these columns were given neither (the parameters were refused): none and 'none' are their
-- truth, which is what the API showed for them.
ALTER TABLE customers ADD COLUMN preferred_locales jsonb NOT NULL DEFAULT '[]'
  CHECK (jsonb_typeof(preferred_locales) = 'array');
ALTER TABLE customers ADD COLUMN tax_exempt text NOT NULL DEFAULT 'none' CHECK (tax_exempt IN ('none', 'exempt', 'reverse'));
