import { createRequire } from 'node:module';
import net from 'node:net';

/**
 * The country of a client address from an offline database: `geoip-country`, which ships GeoLite2 country ranges
 * inside its npm package and looks them up in memory (about 1 µs; no network, no download at install). Private,
 * loopback and unknown addresses have no country.
 */
interface GeoipCountry {
  lookup(ip: string): { country: string } | null;
}

const require = createRequire(import.meta.url);
let database: GeoipCountry | undefined;

function geoip(): GeoipCountry {
  database ??= require('geoip-country') as GeoipCountry;
  return database;
}

/** The version of the country database (the package's, which is the data's date). */
export function ipCountryDatabaseVersion(): string {
  return (require('geoip-country/package.json') as { version: string }).version;
}

export function ipCountry(address: string | null | undefined): string | undefined {
  if (address === null || address === undefined || net.isIP(address) === 0) return undefined;
  const found = geoip().lookup(address);
  return found === null || found.country === '' ? undefined : found.country;
}
