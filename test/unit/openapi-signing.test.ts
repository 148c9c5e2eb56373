import { describe, expect, it } from 'vitest'
import { sign, signedQuery } from '../../src/drivers/openapi/signing.js'

describe('openapi signing (section 4)', () => {
  it('matches the document vector md5(1573539353795#123456)', () => {
    expect(sign(1573539353795, '123456')).toBe('188ef735093645c802b0e4741bd3e9a1')
    expect(sign('1573539353795', '123456')).toBe('188ef735093645c802b0e4741bd3e9a1')
  })

  it('is lowercase hex and depends on the password', () => {
    const s = sign(1573539353795, 'other')
    expect(s).toMatch(/^[0-9a-f]{32}$/)
    expect(s).not.toBe('188ef735093645c802b0e4741bd3e9a1')
  })

  it('builds the timestamp&sign query for a given time', () => {
    expect(signedQuery('123456', 1573539353795)).toBe('timestamp=1573539353795&sign=188ef735093645c802b0e4741bd3e9a1')
  })

  it('defaults to a fresh millisecond timestamp', () => {
    const before = Date.now()
    const q = new URLSearchParams(signedQuery('pw'))
    const ts = Number(q.get('timestamp'))
    expect(ts).toBeGreaterThanOrEqual(before)
    expect(ts).toBeLessThanOrEqual(Date.now())
    expect(q.get('sign')).toBe(sign(ts, 'pw'))
  })
})
