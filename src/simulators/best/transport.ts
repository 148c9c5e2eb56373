/**
 * The two links a simulated `best` device can hold to its server (protocols/best.txt):
 *
 * - best-w: one WebSocket to the URL getBrokerServer answered (our gateway: ws://HOST:PORT/best),
 *   one JSON document per text frame, both directions.
 * - best-m: an MQTT client on the broker URL getBrokerServer answered. The document names no
 *   topics (AMBIGUITIES best #3); CLI.md settles them: the device publishes on `best/{sn}/up` and
 *   subscribes to `best/{sn}/down`, both QoS 1.
 *
 * A link only moves text; the protocol lives in device.ts.
 */
import { connect as mqttConnect, type IClientOptions, type MqttClient } from 'mqtt'
import { WebSocket } from 'ws'

export type BestTransport = 'ws' | 'mqtt'

export interface BestLink {
  readonly transport: BestTransport
  readonly url: string
  /** Sends one JSON document (best-m: QoS 1 publish, resolves on PUBACK). */
  send(msg: Record<string, unknown>): Promise<void>
  /** Closes the link; `abrupt` drops it without a closing handshake (a device losing power or its network). */
  close(abrupt?: boolean): Promise<void>
}

export interface LinkHandlers {
  /** One received JSON document, as text (parsed by the device, so bad JSON can be reported). */
  onMessage(text: string): void
  /** Called once when the link is gone, whoever closed it. */
  onClose(reason: string): void
}

export interface LinkOptions {
  /** Connect timeout, ms. */
  timeoutMs: number
  /** From getBrokerServer's answer (pem texts), passed to TLS for wss:// and mqtts:// URLs. */
  tls?: { ca?: string; cert?: string; key?: string }
}

/** CLI.md: best-m topics. */
export function bestTopics(sn: string): { up: string; down: string } {
  return { up: `best/${sn}/up`, down: `best/${sn}/down` }
}

export function openLink(transport: BestTransport, url: string, sn: string, handlers: LinkHandlers, opts: LinkOptions): Promise<BestLink> {
  return transport === 'ws' ? openWsLink(url, handlers, opts) : openMqttLink(url, sn, handlers, opts)
}

// ---------------------------------------------------------------------------------------------
// best-w

export function openWsLink(url: string, handlers: LinkHandlers, opts: LinkOptions): Promise<BestLink> {
  return new Promise<BestLink>((resolve, reject) => {
    let opened = false
    let closed = false
    const ws = new WebSocket(url, {
      handshakeTimeout: opts.timeoutMs,
      ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
      ...(opts.tls?.cert ? { cert: opts.tls.cert } : {}),
      ...(opts.tls?.key ? { key: opts.tls.key } : {}),
    })
    const finish = (reason: string): void => {
      if (closed) return
      closed = true
      if (opened) handlers.onClose(reason)
      else reject(new Error(`WebSocket ${url}: ${reason}`))
    }
    ws.on('error', (err) => finish(err.message))
    ws.on('close', (code, why) => finish(`closed (${code}${why.length ? ` ${why.toString('utf8')}` : ''})`))
    ws.on('message', (data, isBinary) => {
      const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data as ArrayBuffer)
      // Text frames are the document's; a binary frame holding JSON is accepted all the same.
      void isBinary
      handlers.onMessage(buf.toString('utf8'))
    })
    ws.on('open', () => {
      opened = true
      resolve({
        transport: 'ws',
        url,
        send: (msg) =>
          new Promise<void>((res, rej) => {
            if (ws.readyState !== WebSocket.OPEN) return rej(new Error('WebSocket is not open'))
            ws.send(JSON.stringify(msg), (err) => (err ? rej(err) : res()))
          }),
        close: (abrupt) =>
          new Promise<void>((res) => {
            if (ws.readyState === WebSocket.CLOSED) return res()
            ws.once('close', () => res())
            if (abrupt) ws.terminate()
            else {
              ws.close(1000, 'bye')
              // A peer that never answers the close frame must not hold us.
              setTimeout(() => ws.terminate(), 1000).unref()
            }
          }),
      })
    })
  })
}

// ---------------------------------------------------------------------------------------------
// best-m

export function openMqttLink(url: string, sn: string, handlers: LinkHandlers, opts: LinkOptions): Promise<BestLink> {
  const { up, down } = bestTopics(sn)
  return new Promise<BestLink>((resolve, reject) => {
    let ready = false
    let closed = false
    const options: IClientOptions = {
      // A device has one stable identity on the broker: its SN (a second connection with the same SN takes over).
      clientId: sn,
      // Clean session: after a reconnect the device logs in again and the server re-sends what is unanswered.
      clean: true,
      // Reconnecting is the device's job (it must call getBrokerServer and log in again), not the client library's.
      reconnectPeriod: 0,
      connectTimeout: opts.timeoutMs,
      keepalive: 60,
      ...(opts.tls?.ca ? { ca: opts.tls.ca } : {}),
      ...(opts.tls?.cert ? { cert: opts.tls.cert } : {}),
      ...(opts.tls?.key ? { key: opts.tls.key } : {}),
    }
    let client: MqttClient
    try {
      client = mqttConnect(url, options)
    } catch (err) {
      reject(err instanceof Error ? err : new Error(String(err)))
      return
    }
    const finish = (reason: string): void => {
      if (closed) return
      closed = true
      if (ready) handlers.onClose(reason)
      else {
        client.end(true)
        reject(new Error(`MQTT ${url}: ${reason}`))
      }
    }
    client.on('error', (err) => finish(err.message))
    client.on('close', () => finish('connection closed'))
    client.on('message', (topic, payload) => {
      if (topic === down) handlers.onMessage(payload.toString('utf8'))
    })
    client.once('connect', () => {
      // Small request/answer messages: without TCP_NODELAY each round trip waits out Nagle + delayed ACK (~40 ms).
      const sock = (client as unknown as { stream?: { setNoDelay?: (on: boolean) => void } }).stream
      sock?.setNoDelay?.(true)
      client.subscribe(down, { qos: 1 }, (err, granted) => {
        if (err) return finish(`subscribe ${down}: ${err.message}`)
        const g = granted?.[0]
        if (g && (g.qos as number) === 128) return finish(`subscribe ${down} refused by the broker`)
        ready = true
        resolve({
          transport: 'mqtt',
          url,
          send: (msg) =>
            new Promise<void>((res, rej) => {
              client.publish(up, JSON.stringify(msg), { qos: 1 }, (e) => (e ? rej(e) : res()))
            }),
          close: (abrupt) =>
            new Promise<void>((res) => {
              if (closed && !client.connected) {
                client.end(true, {}, () => res())
                return
              }
              client.end(Boolean(abrupt), {}, () => res())
            }),
        })
      })
    })
  })
}
