import { BlockList, isIP } from 'node:net'

/**
 * Source pinning (`device add --allow-from`): address ranges in CIDR form, IPv4 and IPv6. A bare
 * address is a range of one (/32, /128).
 */

/** One CIDR, normalised ("10.0.0.7" → "10.0.0.7/32"); an Error saying what is wrong otherwise. */
export function parseCidr(text: string): string {
  const t = text.trim()
  const slash = t.indexOf('/')
  const address = slash < 0 ? t : t.slice(0, slash)
  const family = isIP(address)
  if (family === 0) throw new Error(`"${t}" is not an IPv4 or IPv6 address or CIDR range`)
  const max = family === 4 ? 32 : 128
  const prefixText = slash < 0 ? String(max) : t.slice(slash + 1)
  const prefix = Number(prefixText)
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) throw new Error(`"${t}": the prefix length must be 0-${max}`)
  return `${address.toLowerCase()}/${prefix}`
}

/** Ranges given as "A, B" or "A;B" or repeated flags: each checked, duplicates dropped. */
export function parseCidrList(values: readonly string[]): string[] {
  const out: string[] = []
  for (const v of values) for (const part of v.split(/[,;\s]+/)) if (part !== '') out.push(parseCidr(part))
  return [...new Set(out)]
}

/** "::ffff:10.0.0.7" (an IPv4 client of a dual-stack socket) → "10.0.0.7". */
export function plainAddress(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  return m ? m[1] : address
}

/** Whether `address` (as a socket reports it) is inside one of `cidrs` (already parsed). */
export function makeCidrMatcher(cidrs: readonly string[]): (address: string) => boolean {
  const list = new BlockList()
  for (const c of cidrs) {
    const [net, prefix] = c.split('/')
    list.addSubnet(net, Number(prefix), isIP(net) === 4 ? 'ipv4' : 'ipv6')
  }
  return (address) => {
    const a = plainAddress(address)
    const family = isIP(a)
    return family !== 0 && list.check(a, family === 4 ? 'ipv4' : 'ipv6')
  }
}
