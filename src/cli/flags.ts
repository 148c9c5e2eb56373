import { Flags } from '@oclif/core'

/** Listener settings for push-style devices (CLI.md "Listener settings"). */
export const listenerFlags = {
  'http-port': Flags.integer({ description: 'gateway HTTP port (0 = any free port)', min: 0, max: 65535, env: 'DOORCTL_HTTP_PORT', helpGroup: 'LISTENER' }),
  'udp-port': Flags.integer({ description: 'gateway UDP port for udp heartbeats', min: 0, max: 65535, env: 'DOORCTL_UDP_PORT', helpGroup: 'LISTENER' }),
  bind: Flags.string({ description: 'address the gateway listens on (default 0.0.0.0)', helpGroup: 'LISTENER' }),
  'mqtt-url': Flags.string({ description: 'MQTT broker for best-m devices (none: embedded broker)', env: 'DOORCTL_MQTT_URL', helpGroup: 'LISTENER' }),
  'mqtt-port': Flags.integer({ description: 'port of the embedded MQTT broker', min: 0, max: 65535, helpGroup: 'LISTENER' }),
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

/** Where doorctl keeps its state (every command): CLI.md "Choosing the store". */
export const storeFlag = {
  store: Flags.string({ description: 'shared store, postgres://USER@HOST:PORT/DB (default: SQLite in DOORCTL_HOME)', env: 'DOORCTL_STORE', helpGroup: 'STORE' }),
}
