/** Byte sizes as people write them: 24GiB, 1.5 GB, 800MiB, 123456. */

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Parses a size; an Error naming `field` when it is not one. */
export function parseBytes(text: string, field: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || unit === undefined) throw new Error(`${field} must be a size such as 24GiB, 1.5GB or 800MiB, got ${JSON.stringify(text)}`);
  const n = Math.round(Number(m[1]) * unit);
  if (!(n > 0)) throw new Error(`${field} must be > 0, got ${JSON.stringify(text)}`);
  return n;
}

/** 1.23 GiB, 456.0 MiB, 789 B. */
export function formatBytes(n: number): string {
  const sign = n < 0 ? '-' : '';
  const a = Math.abs(n);
  if (a >= 2 ** 30) return `${sign}${(a / 2 ** 30).toFixed(2)} GiB`;
  if (a >= 2 ** 20) return `${sign}${(a / 2 ** 20).toFixed(1)} MiB`;
  if (a >= 2 ** 10) return `${sign}${(a / 2 ** 10).toFixed(1)} KiB`;
  return `${sign}${a} B`;
}
