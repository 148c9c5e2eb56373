import { Flags } from '@oclif/core'

/** Listener settings for push-style devices (CLI.md "Listener settings"). */
export const listenerFlags = {
  'http-port': Flags.integer({ description: 'gateway HTTP port (0 = any free port)', min: 0, max: 65535, env: 'DOORCTL_HTTP_PORT', helpGroup: 'LISTENER' }),
  'udp-port': Flags.integer({ description: 'gateway UDP port for udp heartbeats', min: 0, max: 65535, env: 'DOORCTL_UDP_PORT', helpGroup: 'LISTENER' }),
  bind: Flags.string({ description: 'address the gateway listens on (default 0.0.0.0)', helpGroup: 'LISTENER' }),
  'mqtt-url': Flags.string({ description: 'MQTT broker for best-m devices (none: embedded broker)', env: 'DOORCTL_MQTT_URL', helpGroup: 'LISTENER' }),
  'mqtt-port': Flags.integer({ description: 'port of the embedded MQTT broker (started anyway when given; default 1883, 8883 with TLS)', min: 0, max: 65535, helpGroup: 'LISTENER' }),
  'tls-cert': Flags.string({ description: 'PEM certificate chain: serve the device port as HTTPS/WSS and the embedded broker as MQTTS (with --tls-key)', helpGroup: 'LISTENER' }),
  'tls-key': Flags.string({ description: 'PEM private key of --tls-cert', helpGroup: 'LISTENER' }),
}

/** The admin listener of `serve` (CLI.md "Admin listener of serve"). */
export const adminFlags = {
  'admin-port': Flags.integer({ description: 'port of the status page, /metrics and /healthz (0 = any free port)', default: 8091, min: 0, max: 65535, env: 'DOORCTL_ADMIN_PORT', helpGroup: 'ADMIN' }),
  'admin-bind': Flags.string({ description: 'address of the admin listener; anything but loopback needs --admin-token-file', default: '127.0.0.1', helpGroup: 'ADMIN' }),
  'no-admin': Flags.boolean({ description: 'no admin listener at all (no status page, metrics or health check)', helpGroup: 'ADMIN' }),
  'admin-token-file': Flags.string({ description: 'file holding the admin token (Authorization: Bearer …); written with a new token, mode 0600, if missing', helpGroup: 'ADMIN' }),
}

/** Target selection and pacing, shared by every command that works on devices. */
export const targetFlags = {
  ...listenerFlags,
  'no-wait': Flags.boolean({ description: 'push-style devices: return "queued" once the command is queued', helpGroup: 'TARGET' }),
  all: Flags.boolean({ description: 'every device in the inventory', helpGroup: 'TARGET' }),
  tag: Flags.string({ description: 'devices with this tag (repeatable)', multiple: true, helpGroup: 'TARGET' }),
  concurrency: Flags.integer({ description: 'devices worked on at once (a push-style device waiting for its next call does not count)', default: 8, min: 1, max: 256, helpGroup: 'TARGET' }),
  timeout: Flags.string({ description: 'give up on a device after this long (30s, 5m, ...)', default: '30s', helpGroup: 'TARGET' }),
}

export const verboseFlag = {
  verbose: Flags.boolean({ char: 'v', description: 'log progress lines to stderr' }),
}

const { 'no-wait': _noWait, ...waitingTargetFlags } = targetFlags
/** Target flags of commands that need the devices' answers to go on (a plan reads before it writes): no --no-wait. */
export const answeredTargetFlags = waitingTargetFlags

/** How record times are rendered (records pull, records watch): default each device's own zone. */
export const renderZoneFlags = {
  tz: Flags.string({ description: "render every time in this IANA zone (e.g. Europe/Berlin) instead of each device's own", exclusive: ['utc'] }),
  utc: Flags.boolean({ description: 'render every time in UTC (+00:00)', exclusive: ['tz'] }),
}

/** Where doorctl keeps its state (every command): CLI.md "Choosing the store". */
export const storeFlag = {
  store: Flags.string({ description: 'shared store, postgres://USER@HOST:PORT/DB (default: SQLite in DOORCTL_HOME)', env: 'DOORCTL_STORE', helpGroup: 'STORE' }),
}
