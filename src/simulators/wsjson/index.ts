export {
  createWsjsonSimulator,
  formatDeviceTime,
  makeJpeg,
  WSJSON_CODE,
  WSJSON_EVENT_TYPE,
  WSJSON_USER_FIELDS,
  type WsjsonSimulator,
  type WsjsonSimulatorOptions,
  type WsjsonEvents,
} from './device.js'
