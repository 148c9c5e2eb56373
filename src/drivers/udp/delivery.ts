import type { CommandResult, GatewayContext, QueuedCommand } from '../../types/gateway.js'
import { isoWithOffset } from '../../util/time.js'
import {
  identity, isObject, openFields, rebootFrame, settingFrame, settingValues, unlockFrame, wireId, type Ack, type Heartbeat, type SettingValues,
} from './codec.js'
import type { Dev, Round, UdpDevices } from './devices.js'
import { FACE_LANE, type UdpPeople } from './people.js'

const UDP_LANE = new Set(['open', 'reboot', 'setConfig'])

interface Outstanding {
  dev: Dev
  cmd: QueuedCommand
  setting?: SettingValues
}

/**
 * Commands to a udp device: `info` from its last heartbeat, face commands to the face list,
 * open/reboot/setConfig as datagrams to where it last heartbeat from, one at a time, resent
 * until acknowledged by their id.
 */
export class UdpDelivery {
  private readonly ctx: GatewayContext
  private readonly outstanding = new Map<string, Outstanding>()
  private readonly resendMs: number
  private readonly resends: number
  private readonly freshMs: number

  constructor(private readonly devices: UdpDevices, private readonly people: UdpPeople, opts: { resendMs?: number; resends?: number; freshMs?: number }) {
    this.ctx = devices.ctx
    this.resendMs = opts.resendMs ?? 1000
    this.resends = opts.resends ?? 5
    this.freshMs = opts.freshMs ?? 60_000
  }

  ack(ack: Ack, from: string): void {
    const o = this.outstanding.get(ack.id)
    if (!o) {
      this.ctx.log.debug('udp ack for no outstanding command (a duplicate, or from before a restart)', { from, id: ack.id, cmd: ack.of })
      return
    }
    const { dev, cmd } = o
    this.outstanding.delete(ack.id)
    if (dev.round?.wire === ack.id) {
      if (dev.round.timer) clearInterval(dev.round.timer)
      dev.round = undefined
    }
    dev.gaveUp = undefined
    dev.heardAt = Math.max(dev.heardAt, Date.now())
    const expected = cmd.kind === 'open' ? 'unlock' : cmd.kind === 'reboot' ? 'reboot' : 'setting'
    if (ack.of !== expected) this.ctx.log.warn('udp ack of another kind than its command; taken by its id', { device: dev.name, id: ack.id, ack: ack.of, command: cmd.kind })
    if (!ack.ok) {
      this.ctx.finish(cmd.id, 'failed', { message: ack.message, deviceCode: ack.type })
    } else if (cmd.kind === 'setConfig') {
      const s = o.setting!
      const newCommunity = s.communityId ?? this.devices.addressed(dev, '').communityId
      const newCode = s.doorcodeNew ?? this.devices.addressed(dev, '').deviceCode
      const changed = s.communityId !== undefined || s.doorcodeNew !== undefined
      if (changed && dev.entry) {
        // the inventory cannot be edited from here: until the CLI updates it, the new identity stays this device
        this.devices.aliases.set(identity(newCommunity, newCode), dev.entry)
      }
      if (changed && dev.hb) {
        // the device confirmed its new identity: commands and `info` use it before a heartbeat says so
        dev.hb = { ...dev.hb, communityId: newCommunity, deviceCode: newCode }
        this.ctx.setState(dev.name, 'heartbeat', { ...dev.hb, at: dev.heardAt })
      }
      const set = [s.communityId !== undefined ? `communityId ${newCommunity}` : '', s.doorcodeNew !== undefined ? `deviceCode ${newCode}` : '', ...Object.keys(s.extra)].filter(Boolean)
      const result: CommandResult = { message: `set ${set.join(', ')}` }
      if (changed) result.data = { newCommunity, newCode }
      this.ctx.finish(cmd.id, 'acknowledged', result)
    } else {
      this.ctx.finish(cmd.id, 'acknowledged', { message: cmd.kind === 'open' ? 'door opened' : 'rebooting' })
    }
    this.ctx.log.debug('udp command acknowledged', { device: dev.name, id: cmd.id, ok: ack.ok, from })
    this.service(dev)
  }

  /** A command was queued: face commands go into the list now; a UDP command is sent now if the device was heard recently. */
  queued(device: string): void {
    try {
      const pending = this.ctx.pending(device)
      if (!pending.some((c) => c.protocol === 'udp')) return
      this.service(this.devices.devOf(device))
    } catch (err) {
      this.ctx.log.warn('udp queue handling failed', { device, error: String(err) })
    }
  }

  service(dev: Dev): void {
    const pending = this.ctx.pending(dev.name).filter((c) => c.protocol === 'udp')
    const ids = new Set(pending.map((c) => c.id))
    for (const id of dev.jobs.keys()) if (!ids.has(id)) dev.jobs.delete(id)
    for (const [wire, o] of this.outstanding) if (o.dev === dev && !ids.has(o.cmd.id)) this.outstanding.delete(wire)
    if (dev.round && !ids.has(dev.round.cmd.id)) {
      if (dev.round.timer) clearInterval(dev.round.timer)
      dev.round = undefined
    }
    let faceWork = false
    for (const cmd of pending) {
      if (cmd.kind === 'info') this.info(dev, cmd)
      else if (FACE_LANE.has(cmd.kind)) faceWork = true
      else if (cmd.kind === 'open' || cmd.kind === 'setConfig') {
        const problem = this.frameOf(dev, cmd)
        if ('error' in problem) this.ctx.finish(cmd.id, 'failed', { message: problem.error })
      }
    }
    if (faceWork || dev.book) this.people.faceService(dev, pending)
    this.nextRound(dev)
  }

  private info(dev: Dev, cmd: QueuedCommand): void {
    const hb = dev.hb ? { ...dev.hb, at: dev.heardAt } : (this.ctx.state(dev.name, 'heartbeat') as (Heartbeat & { at: number }) | undefined)
    if (!hb) return // never heard from: answered at its first heartbeat
    const at = isoWithOffset(new Date(hb.at))
    const data = {
      communityId: hb.communityId, deviceCode: hb.deviceCode, softVer: hb.softVer, name: hb.name, deviceSn: hb.deviceSn,
      address: dev.address ? `${dev.address.host}:${dev.address.port}` : '', last_heartbeat: at,
      device: { communityId: hb.communityId, deviceCode: hb.deviceCode },
    }
    this.ctx.finish(cmd.id, 'acknowledged', { data, message: `from the heartbeat of ${at}` })
  }

  private frameOf(dev: Dev, cmd: QueuedCommand): { frame: string; setting?: SettingValues } | { error: string } {
    const a = this.devices.addressed(dev, wireId(cmd))
    switch (cmd.kind) {
      case 'open': {
        const who = openFields(cmd.payload)
        return 'error' in who ? who : { frame: unlockFrame(a, who) }
      }
      case 'reboot':
        return { frame: rebootFrame(a) }
      case 'setConfig': {
        const s = settingValues(String(cmd.payload.section ?? ''), isObject(cmd.payload.values) ? cmd.payload.values : {})
        return 'error' in s ? s : { frame: settingFrame(a, s), setting: s }
      }
      default:
        return { error: `udp devices cannot ${cmd.kind}` }
    }
  }

  /** Starts sending the oldest UDP command, if the device can be reached now. */
  private nextRound(dev: Dev): void {
    if (dev.round || !dev.address || !this.devices.socket) return
    if (Date.now() - dev.heardAt > this.freshMs) return
    const pending = this.ctx.pending(dev.name).filter((c) => c.protocol === 'udp' && UDP_LANE.has(c.kind))
    for (const cmd of pending) {
      // a round that ran out waits for a newer heartbeat (not for any HTTP call)
      if (dev.gaveUp?.cmd === cmd.id && dev.heardAt <= dev.gaveUp.at) return
      const f = this.frameOf(dev, cmd)
      if ('error' in f) {
        this.ctx.finish(cmd.id, 'failed', { message: f.error })
        continue
      }
      const round: Round = { cmd, wire: wireId(cmd), frame: f.frame, sends: 0 }
      dev.round = round
      this.outstanding.set(round.wire, { dev, cmd, setting: f.setting })
      // the first datagram goes out once this gateway's claim of the command is committed (on a shared store another gateway may have it)
      this.ctx.durable(() => this.ctx.delivered(cmd.id)).then(() => {
        if (dev.round !== round || !this.devices.socket) return
        this.sendRound(dev, round)
        round.timer = setInterval(() => this.resend(dev, round), this.resendMs)
        round.timer.unref?.()
      }, (err: Error) => {
        this.ctx.log.info('udp command not sent: its claim in the store failed; tried again after the next heartbeat', { device: dev.name, id: cmd.id, error: err.message })
        if (dev.round !== round) return
        dev.round = undefined
        this.outstanding.delete(round.wire)
        dev.gaveUp = { cmd: cmd.id, at: dev.heardAt }
      })
      return
    }
  }

  private sendRound(dev: Dev, round: Round): void {
    this.devices.send(dev, round.frame)
    round.sends++
    if (round.sends === 1) {
      this.ctx.log.debug('udp command sent', { device: dev.name, id: round.cmd.id, kind: round.cmd.kind, wire: round.wire })
    }
  }

  private resend(dev: Dev, round: Round): void {
    try {
      if (dev.round !== round) {
        if (round.timer) clearInterval(round.timer)
        return
      }
      const still = this.ctx.pending(dev.name).some((c) => c.id === round.cmd.id)
      if (!still || round.sends > this.resends) {
        if (round.timer) clearInterval(round.timer)
        dev.round = undefined
        if (still) {
          dev.gaveUp = { cmd: round.cmd.id, at: dev.heardAt }
          this.ctx.log.info('udp command not acknowledged; sent again after the next heartbeat', { device: dev.name, id: round.cmd.id, sends: round.sends })
        } else this.nextRound(dev)
        return
      }
      this.ctx.log.debug('udp command resent (no ack yet)', { device: dev.name, id: round.cmd.id, send: round.sends + 1 })
      this.sendRound(dev, round)
    } catch (err) {
      this.ctx.log.warn('udp resend failed', { device: dev.name, error: String(err) })
    }
  }
}
