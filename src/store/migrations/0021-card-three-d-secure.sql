-- 3-D Secure 2 in the card acquirer sandbox (src/connectors/card/sandbox/access-control-server.ts). A payment whose
-- issuer wants a challenge waits in requires_action with its ACS transaction until the shopper answers on the ACS
-- page (then it is authorized, captured or declined) or the merchant abandons it. An expired challenge changes
-- nothing: the payment waits for the merchant to abandon it.
ALTER TABLE sandbox_card_payments DROP CONSTRAINT sandbox_card_payments_status_check;
ALTER TABLE sandbox_card_payments ADD CONSTRAINT sandbox_card_payments_status_check
  CHECK (status IN ('requires_action', 'authorized', 'captured', 'declined', 'voided', 'abandoned'));

-- What the acquirer needs to finish a payment after its challenge, since it keeps no card number: whether to
-- capture, the brand (which sets the ECI) and the issuer's answer to the authorization that follows.
ALTER TABLE sandbox_card_payments
  ADD COLUMN capture boolean NOT NULL DEFAULT false,
  ADD COLUMN card_brand text,
  ADD COLUMN issuer_decline jsonb;

-- The challenge's ACS transaction: its id (in the page's URL), the directory server's id, the one-time code the
-- page shows the tester, the page's form token (against cross-site posts), where the shopper returns, and the
-- wrong codes entered so far. Kept after the payment ends, so that the page can say the challenge is over.
ALTER TABLE sandbox_card_payments
  ADD COLUMN acs_trans_id text UNIQUE,
  ADD COLUMN acs_ds_trans_id text,
  ADD COLUMN acs_code text,
  ADD COLUMN acs_form_token text,
  ADD COLUMN acs_return_url text,
  ADD COLUMN acs_expires_at timestamptz,
  ADD COLUMN acs_attempts integer NOT NULL DEFAULT 0 CHECK (acs_attempts >= 0);

ALTER TABLE sandbox_card_payments ADD CONSTRAINT sandbox_card_payments_challenge_check
  CHECK (status <> 'requires_action' OR (acs_trans_id IS NOT NULL AND acs_ds_trans_id IS NOT NULL AND acs_code IS NOT NULL
    AND acs_form_token IS NOT NULL AND acs_return_url IS NOT NULL AND acs_expires_at IS NOT NULL AND card_brand IS NOT NULL));
