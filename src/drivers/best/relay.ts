/**
 * best-m over MQTT, and several gateways on one broker. Topic layout:
 *   best/{sn}/up                    device → gateways; subscribed as `$share/doorctl/best/+/up`, so
 *                                   each device message reaches exactly one gateway
 *   best/{sn}/down                  gateway → device (QoS 1)
 *   doorctl/best/gw/{gatewayId}     messages relayed to the gateway that owns them (QoS 1)
 *   doorctl/best/dev/{sn}/session   retained: the device's current login session and last report
 *   doorctl/best/dev/{sn}/claim     "this gateway awaits these funcIds from sn" (QoS 1)
 * Rule: a command is queued in the gateway the CLI talked to, and only that gateway publishes it
 * on best/{sn}/down, once per login session (so the device gets it once). Whichever gateway the
 * shared subscription hands a device message to handles it — unless another gateway owns it: a
 * reply whose cmdId carries another gateway's id, or (for messages without cmdId: the answer to
 * a time sync, users uploaded for a query, AMBIGUITIES #8) a funcId another gateway claimed while
 * its command is in flight. Those are relayed, unanswered, to the owner's topic, and the owner
 * answers the device. The gateway that handles a login publishes the session (retained) before
 * answering, so every gateway knows the device is logged in before it can send anything else.
 */
import type { GatewayContext } from '../../types/gateway.js'
import { CODE, infoData, isObject, parseMessage, str, TOPICS, upTopicSn, type BestMessage } from './codec.js'
import { EXCHANGE, type BestCore, type Channel, type Dev, type Job, type RelayPart, type ResolvedBestOptions } from './state.js'

export class Relay implements RelayPart {
  private readonly claims = new Map<string, { gw: string; funcIds: Set<string>; until: number }>()

  constructor(private readonly core: BestCore) {}

  private get ctx(): GatewayContext {
    return this.core.ctx
  }

  private get o(): ResolvedBestOptions {
    return this.core.o
  }

  /** Claims of other gateways end with their command's deadline. */
  sweep(now: number): void {
    for (const [sn, c] of this.claims) if (c.until < now) this.claims.delete(sn)
  }

  mqttChannel(sn: string, dev?: Dev): Channel {
    const host = dev ? (this.ctx.state(dev.name, 'httpHost') as string | undefined) : undefined
    return {
      kind: 'mqtt', session: dev?.mqtt?.session ?? '', address: `mqtt:${sn}`, host,
      send: (msg) => {
        this.core.link?.client.publish(TOPICS.down(sn), JSON.stringify(msg), { qos: 1 }, (err) => {
          if (err) this.ctx.log.warn('best mqtt publish failed', { sn, error: err.message })
        })
      },
    }
  }

  onMqtt(topic: string, payload: Buffer): void {
    const sn = upTopicSn(topic)
    if (sn !== undefined) return this.onMqttUp(sn, payload)
    const parts = topic.split('/')
    if (topic === `doorctl/best/gw/${this.core.gwId}`) return this.onRelay(payload)
    if (parts.length === 5 && parts[0] === 'doorctl' && parts[1] === 'best' && parts[2] === 'dev') {
      if (parts[4] === 'session') return this.onSessionNotice(parts[3], payload)
      if (parts[4] === 'claim') return this.onClaim(parts[3], payload)
    }
  }

  private onMqttUp(sn: string, payload: Buffer): void {
    const p = parseMessage(payload)
    const entry = this.ctx.findDevice('best', sn)
    const dev = entry ? this.core.devOf(entry) : undefined
    const ch = this.mqttChannel(sn, dev)
    if ('error' in p) return this.core.malformed(ch, p, dev?.name)
    const m = p.msg
    // over best-m the topic names the device; sn in a message must agree
    if (m.sn && m.sn !== sn) return this.core.answerOnce(dev, ch, m, CODE.badRequest, 'sn differs from the topic')
    if (!dev) {
      if (EXCHANGE.has(m.funcId)) return this.core.sessions.exchange(undefined, ch, m)
      return this.core.unknown(sn, ch, m)
    }
    if (this.core.duplicate(dev, ch, m)) return
    const owner = this.ownerOf(dev, m)
    if (owner !== undefined && owner !== this.core.gwId) {
      this.core.remember(dev, m.mid, null)
      this.core.link?.client.publish(`doorctl/best/gw/${owner}`, JSON.stringify({ from: this.core.gwId, sn, payload: payload.toString('utf8') }), { qos: 1 })
      this.ctx.log.debug('best message relayed to its gateway', { device: dev.name, funcId: m.funcId, to: owner })
      return
    }
    this.core.handle(dev, ch, m)
  }

  /** The gateway a device message belongs to: by the cmdId it answers, else by a live claim. */
  private ownerOf(dev: Dev, m: BestMessage): string | undefined {
    const cmdId = str(m.params.cmdId).trim()
    const prefix = /^([0-9a-z]{1,16})-\d+-\d+$/.exec(cmdId)
    if (prefix) return prefix[1]
    const c = this.claims.get(dev.sn)
    if (c && c.until > Date.now() && c.funcIds.has(m.funcId)) return c.gw
    return undefined
  }

  private onRelay(payload: Buffer): void {
    let r: unknown
    try {
      r = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isObject(r) || typeof r.sn !== 'string' || typeof r.payload !== 'string') return
    const entry = this.ctx.findDevice('best', r.sn)
    if (!entry) return
    const dev = this.core.devOf(entry)
    const p = parseMessage(r.payload)
    if ('error' in p) return
    const ch = this.mqttChannel(r.sn, dev)
    if (this.core.duplicate(dev, ch, p.msg)) return
    this.core.handle(dev, ch, p.msg)
  }

  publishSession(dev: Dev): void {
    if (!this.core.link || !dev.mqtt) return
    dev.sessionPublishedAt = Date.now()
    const report = this.ctx.state(dev.name, 'report')
    this.core.link.client.publish(`doorctl/best/dev/${dev.sn}/session`, JSON.stringify({ gw: this.core.gwId, session: dev.mqtt.session, ready: dev.mqtt.ready, at: Date.now(), report }), { qos: 1, retain: true })
  }

  private onSessionNotice(sn: string, payload: Buffer): void {
    if (payload.length === 0) return
    let n: unknown
    try {
      n = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isObject(n) || typeof n.session !== 'string') return
    const entry = this.ctx.findDevice('best', sn)
    if (!entry) return
    const dev = this.core.devOf(entry)
    // our own notice echoed back; one of this gateway's earlier runs (same id, retained) still counts
    if (n.gw === this.core.gwId && dev.mqtt?.session === n.session) return
    const at = typeof n.at === 'number' ? n.at : 0
    if (isObject(n.report) && isObject(n.report.info)) {
      const mine = this.ctx.state(dev.name, 'report') as { at?: number } | undefined
      if (!mine || (mine.at ?? 0) < Number(n.report.at ?? 0)) {
        this.ctx.setState(dev.name, 'report', n.report)
        if (dev.job?.cmd.kind === 'info') this.core.delivery.finishInfo(dev, dev.job)
      }
    }
    if (Date.now() - at < this.ctx.settings.offlineAfterMs) this.ctx.touch(entry, `mqtt:${sn}`, isObject(n.report) && isObject(n.report.info) ? infoData(n.report.info) : undefined)
    if (!dev.mqtt || dev.mqtt.session !== n.session) {
      this.core.sessions.newSession(dev, n.session)
      dev.mqtt = { session: n.session, at, gw: String(n.gw), ready: false }
      if (n.ready === true) this.core.sessions.sessionReady(dev, 'mqtt')
      else this.core.sessions.awaitReport(dev, 'mqtt', Math.max(0, at + this.o.reportGraceMs - Date.now()))
    } else {
      dev.mqtt.at = at
      if (n.ready === true && !dev.mqtt.ready) this.core.sessions.sessionReady(dev, 'mqtt')
    }
  }

  private onClaim(sn: string, payload: Buffer): void {
    let c: unknown
    try {
      c = JSON.parse(payload.toString('utf8'))
    } catch {
      return
    }
    if (!isObject(c) || typeof c.gw !== 'string' || c.gw === this.core.gwId) return
    if (c.release === true) {
      if (this.claims.get(sn)?.gw === c.gw) this.claims.delete(sn)
      return
    }
    const funcIds = Array.isArray(c.funcIds) ? c.funcIds.map(String) : []
    this.claims.set(sn, { gw: c.gw, funcIds: new Set(funcIds), until: typeof c.until === 'number' ? c.until : Date.now() + 60_000 })
  }

  async claim(dev: Dev, job: Job, funcIds: string[]): Promise<void> {
    if (!this.core.link) return
    await this.core.link.client.publishAsync(`doorctl/best/dev/${dev.sn}/claim`, JSON.stringify({ gw: this.core.gwId, funcIds, until: job.cmd.expiresAt }), { qos: 1 })
    job.claimed = true
  }

  release(dev: Dev, job: Job): void {
    if (!job.claimed || !this.core.link) return
    job.claimed = false
    this.core.link.client.publish(`doorctl/best/dev/${dev.sn}/claim`, JSON.stringify({ gw: this.core.gwId, release: true }), { qos: 1 })
  }

}
