import { describe, expect, it } from 'vitest'
import { DeviceError, statusOf, UnsupportedError } from '../../src/types/errors.js'
import { isAuthCode, OPENAPI_ERRORS, openapiError } from '../../src/drivers/openapi/errors.js'

const ALL_CODES = [
  10001, 10002, 10003, 10004, 10005, 20001, 20002, 30001, 30002, 30003, 30004, 40001, 50001, 50002, 50003, 50004,
  50008, 50009, 99999,
]

describe('openapi error table (section 7)', () => {
  it('has every code of the document', () => {
    expect(Object.keys(OPENAPI_ERRORS).map(Number).sort()).toEqual([...ALL_CODES].sort())
  })

  it.each(ALL_CODES)('code %i → typed error with the code, the English message and a suggestion', (code) => {
    const info = OPENAPI_ERRORS[code]!
    const err = openapiError(code, info.message, '', 'POST /api/x')
    if (code === 40001) {
      expect(err).toBeInstanceOf(UnsupportedError)
      expect(err).not.toBeInstanceOf(DeviceError)
      expect(statusOf(err)).toBe('unsupported')
    } else {
      expect(err).toBeInstanceOf(DeviceError)
      expect(statusOf(err)).toBe('failed')
      expect(err.exitCode).toBe(1)
    }
    expect((err as { deviceCode?: unknown }).deviceCode).toBe(code)
    expect(err.message).toContain(`device answered ${code} ${info.message}: ${info.explanation}`)
    expect(err.message).toContain('(POST /api/x)')
    expect(err.suggestion).toBeTruthy()
    expect(err.suggestion!.length).toBeGreaterThan(10)
  })

  it.each([10001, 10002, 10005])('%i suggests re-adding the device with the right password', (code) => {
    const err = openapiError(code, '', '', undefined, { name: 'lobby', host: '127.0.0.1' })
    expect(err.suggestion).toContain('wrong password')
    expect(err.suggestion).toContain('doorctl device add lobby --protocol openapi --host 127.0.0.1 --password-stdin')
  })

  it('10005 says the password is wrong', () => {
    expect(openapiError(10005, 'Signature Failed', '').message).toMatch(/^device answered 10005 Signature Failed: .*password is wrong/)
  })

  it('10003 explains the 5-minute clock check and that sync-time cannot fix it', () => {
    const err = openapiError('10003', 'Request Expired', '')
    expect(err.message).toContain('more than 5 minutes off')
    expect(err.suggestion).toContain("this machine's clock")
    expect(err.suggestion).toContain('own screen or web page')
    expect(err.suggestion).toMatch(/sync-time.*cannot fix/)
  })

  it('keeps what the device said when it differs from the table', () => {
    const err = openapiError(40001, 'Not Support', 'device-not-support')
    expect(err.message).toContain('device answered 40001 Not Support (device-not-support)')
  })

  it('an undocumented code is a DeviceError that says so', () => {
    const err = openapiError(12345, 'Weird', 'odd')
    expect(err).toBeInstanceOf(DeviceError)
    expect(err.message).toContain('device answered 12345 Weird (odd)')
    expect(err.message).toContain('does not list')
    expect((err as DeviceError).deviceCode).toBe(12345)
  })

  it('isAuthCode covers 10001…10005 only', () => {
    for (const c of ALL_CODES) expect(isAuthCode(c)).toBe(c >= 10001 && c <= 10005)
    expect(isAuthCode('10005')).toBe(true)
    expect(isAuthCode(undefined)).toBe(false)
  })
})
