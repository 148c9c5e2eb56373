export {
  createBestSimulator,
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
  type BestSimulator,
  type BestSimulatorOptions,
  type BestEvents,
} from './device.js'
export { bestTopics, openLink, type BestLink, type BestTransport, type LinkHandlers, type LinkOptions } from './transport.js'
