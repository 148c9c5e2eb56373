import type { RemoteInfo } from 'node:dgram'
import { ACK_TYPE, COMMANDS, encodeMessage, errMsg, parseLenientJson, SEEN_IDS, str, type ParsedMessage } from './protocol.js'
import type { UdpState } from './state.js'
import type { UdpTransport } from './transport.js'

/** Commands from the server over UDP (sections 7–9: unlock, setting, reboot), each acked by its id, duplicates acked again. */
export class UdpCommands {
  private dropLeft: number
  /** `cmd|id` → the ack first sent, re-sent verbatim for duplicates. */
  private readonly seen = new Map<string, string>()

  /** `heartbeat` and `schedule` restart the heartbeat period after a reboot. */
  constructor(
    private readonly state: UdpState,
    private readonly transport: UdpTransport,
    private readonly heartbeat: () => Promise<void>,
    private readonly schedule: () => void,
  ) {
    this.dropLeft = state.opts.dropIncoming ?? 0
  }

  onDatagram(buf: Buffer, rinfo: RemoteInfo): void {
    const text = buf.toString('utf8')
    // README "udp": the server reaches the device only through the heartbeat's NAT mapping.
    if (this.state.opts.natFilter !== false && (rinfo.address !== this.transport.serverAddress || rinfo.port !== this.state.opts.udpPort)) {
      this.state.events.datagramsIgnored++
      this.state.log(`ignored datagram from ${rinfo.address}:${rinfo.port} (not the server's ${this.transport.serverAddress}:${this.state.opts.udpPort}; a NAT would drop it): ${text}`)
      return
    }
    if (this.state.opts.natTimeoutMs !== undefined && Date.now() - this.state.lastHeartbeatAt > this.state.opts.natTimeoutMs) {
      this.state.events.datagramsIgnored++
      this.state.log(`ignored datagram: NAT mapping expired (${Date.now() - this.state.lastHeartbeatAt} ms since the last heartbeat): ${text}`)
      return
    }
    const parsed = parseLenientJson(text)
    if (!parsed) {
      this.state.events.datagramsIgnored++
      this.state.problem(`unparseable datagram: ${text.slice(0, 200)}`)
      return
    }
    const cmd = str(parsed.value.cmd) ?? ''
    if (cmd === 'heartack') {
      this.state.log(`<- ${text}`)
      this.state.events.heartacks++
      // Section 1: result "0" 成功 / "1" 失败 (CLI.md: an unknown device gets result "1").
      const result = str(parsed.value.result)
      this.state.events.lastHeartackResult = result
      if (result === undefined) this.state.problem(`heartack without result: ${text}`)
      else if (result !== '0') this.state.log(`server refused the heartbeat (result ${result}: ${str(parsed.value.message) ?? ''}); heartbeating on`)
      return
    }
    this.state.events.commandsReceived++
    if (this.dropLeft > 0) {
      this.dropLeft--
      this.state.events.commandsDropped++
      this.state.log(`dropped (simulated loss, ${this.dropLeft} more to drop): ${text}`)
      return
    }
    this.state.log(`<- ${text}`)
    this.onCommand(cmd, parsed)
  }

  private onCommand(cmd: string, parsed: ParsedMessage): void {
    const m = parsed.value
    const id = m.id
    const idText = str(id)
    const key = idText !== undefined ? `${cmd}|${idText}` : undefined
    if (key !== undefined) {
      const previous = this.seen.get(key)
      if (previous !== undefined) {
        // README "udp": id binds a command to its ack — a resent id is the same command: ack again, don't execute.
        this.state.events.duplicatesIgnored++
        this.state.log(`duplicate ${cmd} id ${idText}: not executed again, ack re-sent`)
        this.sendAck(previous)
        return
      }
    }
    const addressed = { communityId: this.state.community, deviceCode: this.state.code }
    let ack: Record<string, unknown>
    if (!COMMANDS.has(cmd)) {
      // Not in the document: answer `<cmd>ack` with type 1 (参数无效) so the server sees a refusal, not silence.
      this.state.problem(`unknown command ${JSON.stringify(cmd)}`)
      ack = { ...addressed, type: ACK_TYPE.invalid, message: `unknown command ${cmd}`, cmd: `${cmd || 'unknown'}ack` }
    } else if (cmd === 'unlock') {
      ack = this.unlock(m)
    } else if (cmd === 'setting') {
      ack = this.setting(parsed)
    } else {
      ack = this.reboot(m)
    }
    if (id !== undefined) ack.id = id // echoed as received (string or number)
    // AMB udp #2: the real device writes `"id","1"`; `brokenIdForm` reproduces it.
    const text = encodeMessage(ack, this.state.opts.brokenIdForm === true)
    if (key !== undefined) {
      this.seen.set(key, text)
      if (this.seen.size > SEEN_IDS) this.seen.delete(this.seen.keys().next().value as string)
    }
    this.sendAck(text)
    if (cmd === 'reboot' && ack.type === ACK_TYPE.ok) this.afterReboot()
  }

  private sendAck(text: string): void {
    this.transport.send(text).catch((e: unknown) => this.state.log(`ack not sent: ${errMsg(e)}`))
  }

  /** Sections 7–9: a command naming another device is refused with type 1 (参数无效). */
  private misaddressed(m: Record<string, unknown>, checkCommunity = true): string | undefined {
    const dc = str(m.deviceCode)
    if (dc !== undefined && dc !== '' && dc !== this.state.code) return `deviceCode ${dc} is not this device (${this.state.code})`
    const ci = str(m.communityId)
    if (checkCommunity && ci !== undefined && ci !== '' && ci !== this.state.community) return `communityId ${ci} is not this device's (${this.state.community})`
    return undefined
  }

  private unlock(m: Record<string, unknown>): Record<string, unknown> {
    const phone = str(m.phone) ?? '' // section 7: "参数必填，可以为”””
    const roomNumber = str(m.roomNumber) ?? ''
    const unitId = str(m.unitId) ?? ''
    // AMB udp #9: the ack carries communityId/deviceCode (its table requires them; the example omits them).
    const ack: Record<string, unknown> = { communityId: this.state.community, deviceCode: this.state.code, type: ACK_TYPE.ok, message: '发送成功', cmd: 'unlockack', phone, roomNumber }
    const refuse = (why: string): Record<string, unknown> => {
      this.state.problem(`unlock refused: ${why}`)
      return { ...ack, type: ACK_TYPE.invalid, message: `参数无效: ${why}` }
    }
    const wrong = this.misaddressed(m)
    if (wrong) return refuse(wrong)
    // AMB udp #9: id is required for unlock (optional for setting/reboot); without it the ack cannot be bound.
    if (str(m.id) === undefined || str(m.id) === '') return refuse('id is required for unlock')
    // AMB udp #9: roomNumber is 4 digits in the command, 8 in the ack's table: accept 4 or 8 digits, or empty (a remote open names no room).
    if (roomNumber !== '' && !/^(\d{4}|\d{8})$/.test(roomNumber)) return refuse(`roomNumber ${roomNumber} is not 4 or 8 digits`)
    // Section 7: unitId "4位长度【0101,010栋1单元】"; empty accepted as for roomNumber.
    if (unitId !== '' && !/^\d{4}$/.test(unitId)) return refuse(`unitId ${unitId} is not 4 digits`)
    this.state.events.unlocks.push({ ...m })
    this.state.log(`door opened (remote unlock${phone ? ` for ${phone}` : ''}${roomNumber ? ` room ${roomNumber}` : ''})`)
    return ack
  }

  private setting(parsed: ParsedMessage): Record<string, unknown> {
    const m = parsed.value
    const before = { communityId: this.state.community, deviceCode: this.state.code }
    // The ack names the identity the command was addressed to; the next heartbeat carries the new one (section 8 does not say).
    const ack: Record<string, unknown> = { ...before, type: ACK_TYPE.ok, message: '发送成功', cmd: 'settingack' }
    const refuse = (why: string): Record<string, unknown> => {
      this.state.problem(`setting refused: ${why}`)
      return { ...ack, type: ACK_TYPE.invalid, message: `参数无效: ${why}` }
    }
    // AMB udp #9 / section 8: communityId is listed twice — the device's own (required) and the new one (optional).
    // Read: two communityId keys → first is the address, last the new value; one that differs from ours → the new value;
    // `communityIdNew` (by analogy with doorcodeNew) is accepted too.
    const cids = parsed.entries.filter(([k]) => k === 'communityId').map(([, v]) => str(v) ?? '')
    let newCommunity = str(m.communityIdNew)
    if (newCommunity === undefined && cids.length >= 2) newCommunity = cids[cids.length - 1]
    if (newCommunity === undefined && cids.length === 1 && cids[0] !== '' && cids[0] !== this.state.community) newCommunity = cids[0]
    if (cids.length >= 2 && cids[0] !== '' && cids[0] !== this.state.community) return refuse(`communityId ${cids[0]} is not this device's (${this.state.community})`)
    const wrong = this.misaddressed(m, false)
    if (wrong) return refuse(wrong)
    const newCode = str(m.doorcodeNew)
    if (m.doorcodeNew !== undefined && (newCode === undefined || newCode === '')) return refuse('doorcodeNew is empty')
    if (newCommunity !== undefined && newCommunity === '') return refuse('new communityId is empty')
    // Section 8: "服务器还想修改，添加参数即可" — other keys are accepted and recorded, not interpreted.
    this.state.events.settings.push({ ...m })
    if (newCode !== undefined && newCode !== this.state.code) {
      this.state.log(`deviceCode ${this.state.code} -> ${newCode}`)
      this.state.code = newCode
    }
    if (newCommunity !== undefined && newCommunity !== this.state.community) {
      this.state.log(`communityId ${this.state.community} -> ${newCommunity}`)
      this.state.community = newCommunity
    }
    return ack
  }

  private reboot(m: Record<string, unknown>): Record<string, unknown> {
    const ack: Record<string, unknown> = { communityId: this.state.community, deviceCode: this.state.code, type: ACK_TYPE.ok, message: '发送成功', cmd: 'rebootack' }
    const wrong = this.misaddressed(m)
    if (wrong) {
      this.state.problem(`reboot refused: ${wrong}`)
      return { ...ack, type: ACK_TYPE.invalid, message: `参数无效: ${wrong}` }
    }
    this.state.events.reboots++
    return ack
  }

  /** A rebooted device heartbeats at once (as on power-up) and restarts its period. Executed ids are kept. */
  private afterReboot(): void {
    this.state.log('rebooting')
    if (this.state.stopped) return
    this.state.track(
      this.heartbeat()
        .then(() => this.schedule())
        .catch((e: unknown) => this.state.log(`heartbeat after reboot failed: ${errMsg(e)}`)),
    )
  }
}
