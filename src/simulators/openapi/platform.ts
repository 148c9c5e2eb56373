/**
 * A simulated openapi face terminal in platform mode, written from section 9 of
 * protocols/openapi-face.txt (平台定制接口说明) and the openapi part of AMBIGUITIES.md — and
 * from nothing else. It shares no code with the driver or the gateway (a simulator built on the
 * server's codec would confirm its misreadings).
 *
 * In platform mode the device is the HTTP client, calling `BaseUrl` (`--platform`):
 * - 9.5 POST /syheartbeat/{deviceid} every `heartbeatMs`, body `{ "Heartinfo": { deviceid, ServerURL } }`.
 * - 9.1 GET /syrecord/{deviceid}?lastQueryTime=T every `pollMs` (T = 0 the first time: "填0则为全量更新"),
 *   applies each `save` (downloading the photo from imageUrl / userImageUrl: http only, jpg only)
 *   and `delete`, reports each outcome with 9.4 POST /syresult/{deviceid}, then keeps the
 *   answer's lastQueryTime for the next poll.
 * - 9.2 POST /syface/{deviceid} on a recognised face (`compare()`), with the capture as base64;
 *   the answer's `openDoor` says whether the door opens.
 * - 9.3 POST /syattribute/{deviceid} for a temperature-only event (`attribute()`).
 *
 * Where section 9 is unclear the choice is a one-line comment naming it.
 */
import { makeTinyJpeg } from './device.js'

export interface OpenapiPlatformSimulatorOptions {
  /** BaseUrl, e.g. http://127.0.0.1:8090 (a path prefix is kept). */
  platform: string
  deviceId: string
  /** 9.5 heartbeat period; default 30000. */
  heartbeatMs?: number
  /** 9.1 poll period; default 10000. */
  pollMs?: number
  /** Faces whose bytes contain this ASCII marker are reported failed in /syresult (default 'NOFACE'). */
  rejectMarker?: string
  /** Per-request timeout; default 5000. */
  requestTimeoutMs?: number
  log?: (line: string) => void
}

export interface SimulatedFace {
  userId: string
  userName: string
  userType: string
  sex?: number
  userRemark: string
  imageUrl: string
  image?: Buffer
  operateTime: number
}

export interface OpenapiPlatformEvents {
  heartbeats: number
  polls: number
  /** Every 9.4 result body sent, in order. */
  results: Record<string, unknown>[]
  /** 9.2 answers with openDoor 1. */
  opens: number
  uploads: number
  /** Photos downloaded from the platform. */
  downloads: number
  /** Requests that failed (network error or non-JSON answer). */
  errors: number
}

export interface CompareOptions {
  userId?: string
  userName?: string
  userType?: string
  img?: Buffer
  temperature?: string
  mask?: boolean
  similarity?: number
  /** 1 in, 2 out (9.2 actionCode). */
  actionCode?: number
  /** Seconds; default now. */
  screenTime?: number
  idCard?: boolean
}

export interface AttributeOptions {
  img?: Buffer
  temperature?: string
  mask?: boolean
  openCode?: number
  openMsg?: string
  screenTime?: number
}

export interface OpenapiPlatformSimulator {
  readonly deviceId: string
  readonly events: OpenapiPlatformEvents
  start(): void
  stop(): Promise<void>
  faces(): Map<string, SimulatedFace>
  /** The lastQueryTime the device will send next. */
  lastQueryTime(): number
  /** One 9.1 poll now (also done on the timer). */
  poll(): Promise<void>
  heartbeat(): Promise<Record<string, unknown>>
  compare(opts?: CompareOptions): Promise<Record<string, unknown>>
  attribute(opts?: AttributeOptions): Promise<Record<string, unknown>>
  /** Sends the last 9.2/9.3 upload again, byte for byte (a device that lost the answer). */
  repeatLast(): Promise<Record<string, unknown>>
}

type Json = Record<string, unknown>

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/** AMBIGUITIES openapi #13: keys (and values) with stray spaces in section 9's examples. */
function trimKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(trimKeys)
  if (!isObject(v)) return v
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k.trim(), trimKeys(x)]))
}

function str(v: unknown): string {
  return typeof v === 'string' ? v.trim() : typeof v === 'number' ? String(v) : ''
}

class PlatformDevice implements OpenapiPlatformSimulator {
  readonly events: OpenapiPlatformEvents = { heartbeats: 0, polls: 0, results: [], opens: 0, uploads: 0, downloads: 0, errors: 0 }
  private readonly base: string
  private readonly store = new Map<string, SimulatedFace>()
  private last = 0
  private timers: NodeJS.Timeout[] = []
  private running = false
  private inflight = new Set<Promise<unknown>>()
  private polling?: Promise<void>
  private lastUpload?: { path: string; body: string }
  private captures = 0
  private readonly logFn: (line: string) => void

  constructor(private readonly opts: OpenapiPlatformSimulatorOptions) {
    this.base = opts.platform.replace(/\/+$/, '')
    this.logFn = opts.log ?? (() => {})
  }

  get deviceId(): string {
    return this.opts.deviceId
  }

  private log(line: string): void {
    this.logFn(`[openapi-platform ${this.opts.deviceId}] ${line}`)
  }

  private url(endpoint: string): string {
    return `${this.base}/${endpoint}/${encodeURIComponent(this.opts.deviceId)}`
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p)
    const done = () => this.inflight.delete(p)
    p.then(done, done)
    return p
  }

  private async request(method: 'GET' | 'POST', url: string, body?: string): Promise<Json> {
    const res = await fetch(url, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json;charset=UTF-8' },
      body,
      signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 5000),
    })
    const text = await res.text()
    let json: unknown
    try {
      json = JSON.parse(text)
    } catch {
      throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 80)}`)
    }
    const out = trimKeys(json)
    if (!isObject(out)) throw new Error(`HTTP ${res.status}, not a JSON object`)
    return out
  }

  start(): void {
    if (this.running) return
    this.running = true
    const loop = (ms: number, fn: () => Promise<unknown>) => {
      const tick = () => {
        if (!this.running) return
        void this.track(fn().catch(() => {})).finally(() => {
          if (this.running) this.timers.push(setTimeout(tick, ms))
        })
      }
      tick()
    }
    loop(this.opts.heartbeatMs ?? 30_000, () => this.heartbeat())
    loop(this.opts.pollMs ?? 10_000, () => this.poll())
  }

  async stop(): Promise<void> {
    this.running = false
    for (const t of this.timers) clearTimeout(t)
    this.timers = []
    await Promise.allSettled([...this.inflight])
  }

  faces(): Map<string, SimulatedFace> {
    return new Map(this.store)
  }

  lastQueryTime(): number {
    return this.last
  }

  async heartbeat(): Promise<Json> {
    this.events.heartbeats++
    // 9.5 example: the fields wrapped in "Heartinfo", values with a leading space (AMBIGUITIES #13)
    const body = JSON.stringify({ Heartinfo: { deviceid: ` ${this.opts.deviceId}`, ServerURL: ` ${this.base}` } })
    try {
      return await this.request('POST', this.url('syheartbeat'), body)
    } catch (err) {
      this.events.errors++
      this.log(`heartbeat failed: ${(err as Error).message}`)
      throw err
    }
  }

  /** One poll at a time: a timer tick during a long one waits for it. */
  poll(): Promise<void> {
    this.polling ??= this.pollOnce().finally(() => { this.polling = undefined })
    return this.polling
  }

  private async pollOnce(): Promise<void> {
    this.events.polls++
    let answer: Json
    try {
      answer = await this.request('GET', `${this.url('syrecord')}?lastQueryTime=${this.last}`)
    } catch (err) {
      this.events.errors++
      this.log(`syrecord failed: ${(err as Error).message}`)
      return
    }
    // 9.1: the example wraps list and lastQueryTime in "serviceResponse"; the table lists them flat
    const inner = isObject(answer.serviceResponse) ? answer.serviceResponse : answer
    const list = Array.isArray(inner.list) ? inner.list.filter(isObject) : []
    const next = Number(inner.lastQueryTime ?? answer.lastQueryTime)
    for (const item of list) {
      const r = await this.apply(item)
      // 9.4 example: "resultList" is one object, values with a leading space (AMBIGUITIES #13)
      const result = { resultList: { userID: ` ${str(item.userId)}`, status: ` ${r.status}`, msg: ` ${r.msg}` } }
      this.events.results.push(result)
      try {
        await this.request('POST', this.url('syresult'), JSON.stringify(result))
      } catch (err) {
        this.events.errors++
        this.log(`syresult failed: ${(err as Error).message}`)
      }
    }
    if (list.length > 0) this.log(`applied ${list.length} library change(s)`)
    if (Number.isFinite(next) && next >= 0) this.last = next
  }

  /** One 9.1 item. Status codes: 9.4 shows only "100" (操作成功); the failures are this simulator's own. */
  private async apply(item: Json): Promise<{ status: string; msg: string }> {
    // AMBIGUITIES #13: "delete " and " save" in the example
    const op = str(item.operation).toLowerCase()
    const userId = str(item.userId)
    if (userId === '') return { status: '104', msg: '用户ID为空' }
    if (op === 'delete') {
      if (!this.store.delete(userId)) return { status: '103', msg: '用户不存在' }
      return { status: '100', msg: '操作成功' }
    }
    if (op !== 'save') return { status: '105', msg: `未知操作 ${op}` }
    // AMBIGUITIES #13: the 9.1 table says imageUrl, its example userImageUrl
    const url = str(item.imageUrl) || str(item.userImageUrl)
    let image: Buffer | undefined
    if (url !== '') {
      // 9.1 注: "图片url目前只支持http，不支持https；仅支持jpg格式"
      if (!url.startsWith('http://')) return { status: '106', msg: '图片地址仅支持http' }
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(this.opts.requestTimeoutMs ?? 5000) })
        if (!res.ok) return { status: '107', msg: `图片下载失败 HTTP ${res.status}` }
        image = Buffer.from(await res.arrayBuffer())
        this.events.downloads++
      } catch (err) {
        return { status: '107', msg: `图片下载失败 ${(err as Error).message}` }
      }
      if (image.length < 3 || image[0] !== 0xff || image[1] !== 0xd8) return { status: '102', msg: '图片格式错误，仅支持jpg' }
      const marker = this.opts.rejectMarker ?? 'NOFACE'
      if (marker !== '' && image.includes(Buffer.from(marker, 'latin1'))) return { status: '101', msg: '未检测到人脸' }
    }
    const sex = Number(item.sex)
    this.store.set(userId, {
      userId,
      userName: str(item.userName),
      userType: str(item.userType),
      sex: Number.isFinite(sex) && item.sex !== undefined ? sex : undefined,
      userRemark: str(item.userRemark),
      imageUrl: url,
      image: image ?? this.store.get(userId)?.image,
      operateTime: Number(item.operateTime) || 0,
    })
    return { status: '100', msg: '操作成功' }
  }

  private nextImage(): Buffer {
    // every capture is a different picture (a real camera never takes the same frame twice)
    this.captures++
    return makeTinyJpeg(`capture ${this.opts.deviceId} ${this.captures} ${Date.now()}`)
  }

  async compare(o: CompareOptions = {}): Promise<Json> {
    const known = this.store.values().next().value as SimulatedFace | undefined
    const userId = o.userId ?? known?.userId ?? '111222'
    const face = this.store.get(userId)
    const actionCode = o.actionCode ?? 1
    // 9.2 example, with the ID-card fields nested in idCardInfo as the example has them
    const body: Json = {
      userId,
      userName: o.userName ?? face?.userName ?? '李二壮',
      userType: o.userType ?? face?.userType ?? 'user',
      deviceId: this.opts.deviceId,
      uuid: 'SY001',
      nationCode: 'XXX社区',
      actionCode,
      action: actionCode === 2 ? '出门' : '进门',
      temperature: o.temperature ?? '36.5°C',
      mask: o.mask ?? true,
      screenTime: o.screenTime ?? Math.floor(Date.now() / 1000),
      similarity: o.similarity ?? 80,
    }
    if (o.idCard) {
      body.idCardInfo = {
        name: '张三', gender: '男', national: '汉族', birthday: '19961122', address: '湖南省永州市xxx县xxx村xxx号',
        id: '43112319961122xxxx', maker: 'xxx县公安局', startDate: '2012.11.22', endDate: '2022.11.22',
      }
    }
    body.img = (o.img ?? this.nextImage()).toString('base64')
    return this.upload('syface', JSON.stringify(body))
  }

  async attribute(o: AttributeOptions = {}): Promise<Json> {
    // 9.3 example: the fields wrapped in "Info"
    const body = {
      Info: {
        deviceid: this.opts.deviceId,
        uuid: 'SY001',
        temperature: o.temperature ?? '36.3',
        mask: o.mask ?? true,
        nationCode: 'XXX社区',
        openCode: o.openCode ?? 100,
        openMsg: o.openMsg ?? '开门成功',
        screenTime: o.screenTime ?? Math.floor(Date.now() / 1000),
        img: (o.img ?? this.nextImage()).toString('base64'),
      },
    }
    return this.upload('syattribute', JSON.stringify(body))
  }

  private async upload(endpoint: 'syface' | 'syattribute', body: string): Promise<Json> {
    this.lastUpload = { path: this.url(endpoint), body }
    return this.send(this.lastUpload)
  }

  private async send(u: { path: string; body: string }): Promise<Json> {
    this.events.uploads++
    const answer = await this.track(this.request('POST', u.path, u.body))
    // 9.2: "openDoor": 0是不开门，1是开门
    if (u.path.includes('/syface/') && Number(answer.openDoor) === 1) {
      this.events.opens++
      this.log(`door opened for ${String(answer.unlockDelay ?? '?')} ms delay`)
    }
    return answer
  }

  async repeatLast(): Promise<Json> {
    if (!this.lastUpload) throw new Error('nothing uploaded yet')
    return this.send(this.lastUpload)
  }
}

export function createOpenapiPlatformSimulator(opts: OpenapiPlatformSimulatorOptions): OpenapiPlatformSimulator {
  return new PlatformDevice(opts)
}
