/** Source pinning's ranges (src/util/cidr.ts): parsing, normalising, matching IPv4, IPv6 and IPv4-mapped addresses. */
import { describe, expect, it } from 'vitest'
import { makeCidrMatcher, parseCidr, parseCidrList } from '../../src/util/cidr.js'

describe('parseCidr / parseCidrList', () => {
  it('normalises addresses and ranges; a bare address is a range of one', () => {
    expect(parseCidr(' 10.0.0.7 ')).toBe('10.0.0.7/32')
    expect(parseCidr('10.0.0.0/8')).toBe('10.0.0.0/8')
    expect(parseCidr('2001:DB8::/32')).toBe('2001:db8::/32')
    expect(parseCidr('::1')).toBe('::1/128')
    expect(parseCidrList(['127.0.0.1/32,fd00::/8', '192.0.2.0/24; 127.0.0.1', ''])).toEqual(['127.0.0.1/32', 'fd00::/8', '192.0.2.0/24'])
  })

  it('refuses what is not a range, naming it', () => {
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0/8', 'example.com', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '1.2.3.4/08x']) {
      expect(() => parseCidr(bad), bad).toThrow(bad)
    }
    expect(() => parseCidrList(['10.0.0.0/8,nope'])).toThrow('nope')
  })
})

describe('makeCidrMatcher', () => {
  it('matches inside the ranges only, IPv4-mapped IPv6 as IPv4', () => {
    const m = makeCidrMatcher(parseCidrList(['127.0.0.1', '192.0.2.0/24', 'fd00::/8']))
    expect(m('127.0.0.1')).toBe(true)
    expect(m('::ffff:127.0.0.1')).toBe(true)
    expect(m('127.0.0.2')).toBe(false)
    expect(m('192.0.2.200')).toBe(true)
    expect(m('192.0.3.1')).toBe(false)
    expect(m('fd12:3456::1')).toBe(true)
    expect(m('fe80::1')).toBe(false)
    expect(m('')).toBe(false)
    expect(m('not an address')).toBe(false)
  })
})
