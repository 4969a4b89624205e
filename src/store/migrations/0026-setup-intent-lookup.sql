-- Confirming a saved card asks whether a SetupIntent authenticated it (3-D Secure may then be skipped): by index.
CREATE INDEX setup_intents_payment_method ON setup_intents (payment_method_id) WHERE status = 'succeeded';
