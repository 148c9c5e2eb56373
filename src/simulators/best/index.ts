export { createBestSimulator, type BestSimulator } from './device.js'
export { type BestSimulatorOptions, type BestEvents } from './state.js'
export {
  bestSign,
  bestDevKey,
  bestPasswordDigest,
  makeJpeg,
  isJpeg,
  parseTimeZone,
  formatTimeZone,
  formatBestTime,
  BEST_CODES,
  BEST_DEFAULT_PRODUCT_ID,
  BEST_GET_BROKER_PATH,
} from './protocol.js'
export { bestTopics, openLink, type BestLink, type BestTransport, type LinkHandlers, type LinkOptions } from './transport.js'
