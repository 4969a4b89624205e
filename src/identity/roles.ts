import type { StaffRole } from '../store/database.ts';

/**
 * What staff may do, one permission per kind of act. Every route of the staff API declares the permission it
 * needs (api/internal-server.ts refuses to start with a route that declares none), and a role grants exactly the
 * permissions listed for it below: anything not listed is denied.
 */
export const staffPermissions = [
  'merchants.read',
  'merchants.create',
  'payments.read',
  'refunds.create',
  'api_keys.read',
  'api_keys.create',
  'api_keys.revoke',
  'staff.read',
  'staff.invite',
  'staff.change_role',
  'staff.disable',
  'approvals.read',
  'approvals.decide',
  'audit.read',
  'limits.read',
  'limits.change',
  'rules.read',
  'rules.change',
] as const;

export type StaffPermission = (typeof staffPermissions)[number];

export const staffRoles: readonly StaffRole[] = ['owner', 'admin', 'developer', 'risk_analyst', 'support_agent', 'finance', 'auditor'];

const everything: readonly StaffPermission[] = staffPermissions;

/**
 * The role table. Owners and administrators run the installation (they alone add merchants); developers manage merchants' API keys; risk
 * analysts look at payments and change merchants' payment limits (a second analyst or an administrator approves
 * each change; rules and reviews come with the risk engine); support agents look up payments
 * and refund them (large refunds need a second person); finance refunds and approves refunds; auditors read
 * everything that is recorded, and change nothing.
 */
export const rolePermissions: Readonly<Record<StaffRole, readonly StaffPermission[]>> = {
  owner: everything,
  admin: everything,
  developer: ['merchants.read', 'payments.read', 'api_keys.read', 'api_keys.create', 'api_keys.revoke'],
  risk_analyst: ['merchants.read', 'payments.read', 'limits.read', 'limits.change', 'rules.read', 'rules.change', 'approvals.read', 'approvals.decide'],
  support_agent: ['merchants.read', 'payments.read', 'refunds.create'],
  finance: ['merchants.read', 'payments.read', 'refunds.create', 'approvals.read', 'approvals.decide'],
  auditor: ['merchants.read', 'payments.read', 'api_keys.read', 'staff.read', 'approvals.read', 'audit.read', 'limits.read', 'rules.read'],
};

export function roleAllows(role: StaffRole, permission: StaffPermission): boolean {
  return rolePermissions[role].includes(permission);
}

export function isStaffRole(value: string): value is StaffRole {
  return (staffRoles as readonly string[]).includes(value);
}

/** Only an owner may make someone an owner, or change an owner's role. */
export function mayAssignRole(assigner: StaffRole, from: StaffRole | undefined, to: StaffRole): boolean {
  if (to === 'owner' || from === 'owner') return assigner === 'owner';
  return true;
}
