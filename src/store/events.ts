import { EventEmitter } from 'node:events'
import type { StoreEvents } from './interface.js'

/** The listeners of one store instance (Store.subscribe). */
export class StoreEventHub {
  private readonly emitter = new EventEmitter()

  constructor() {
    // one listener per gateway part or waiter set, not per command: no limit worth warning about
    this.emitter.setMaxListeners(0)
  }

  subscribe<E extends keyof StoreEvents>(event: E, listener: StoreEvents[E]): () => void {
    this.emitter.on(event, listener)
    return () => { this.emitter.off(event, listener) }
  }

  emit<E extends keyof StoreEvents>(event: E, ...args: Parameters<StoreEvents[E]>): void {
    this.emitter.emit(event, ...args)
  }

  count(event: keyof StoreEvents): number {
    return this.emitter.listenerCount(event)
  }
}
