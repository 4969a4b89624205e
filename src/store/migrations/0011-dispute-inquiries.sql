-- Inquiries: a card network's request for information before any chargeback (Stripe's warning_* statuses).
-- Nothing is withdrawn while a dispute is an inquiry; if the issuer escalates it to a chargeback, the same dispute
-- moves to needs_response and the amount and fee are withdrawn then.
ALTER TABLE disputes ALTER COLUMN debited_account DROP NOT NULL;
ALTER TABLE disputes ADD CONSTRAINT disputes_withdrawn_unless_inquiry
  CHECK (debited_account IS NOT NULL OR status IN ('warning_needs_response', 'warning_under_review', 'warning_closed'));

ALTER TABLE sandbox_card_disputes DROP CONSTRAINT sandbox_card_disputes_status_check;
ALTER TABLE sandbox_card_disputes ADD CONSTRAINT sandbox_card_disputes_status_check
  CHECK (status IN ('warning_needs_response', 'warning_under_review', 'warning_closed', 'needs_response', 'under_review', 'won', 'lost'));

-- The sandbox remembers, from the card, that the dispute after capture starts as an inquiry (4000000000001976).
ALTER TABLE sandbox_card_payments ADD COLUMN dispute_is_inquiry boolean NOT NULL DEFAULT false;
