-- Changes to a merchant's payment limits made by staff need a second person's approval (four-eyes).
ALTER TABLE staff_approvals DROP CONSTRAINT staff_approvals_action_check;
ALTER TABLE staff_approvals ADD CONSTRAINT staff_approvals_action_check
  CHECK (action IN ('refund.create', 'api_key.create', 'staff.invite', 'staff.role_change', 'limit.change'));
