import { scanForCardNumbers, type PanScanResult } from '../../src/vault/pan-scanner.ts';

// Identifiers made of random hex (digests, ciphertexts, UUIDs such as the Stripe SDK's idempotency keys) hold
// digit groups that, read together, pass the Luhn check now and then by chance: "c312-4965-9098-8369" is one.
// They are blanked out, keeping every offset, before the scan; tests search for the exact card numbers they
// submitted in the unblanked text as well.
const randomIdentifiers = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32,}/gi;

export function scanOutsideIdentifiers(text: string): PanScanResult {
  return scanForCardNumbers(text.replace(randomIdentifiers, (identifier) => 'x'.repeat(identifier.length)));
}
