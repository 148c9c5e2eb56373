export { createHttpv2Simulator, type Httpv2Simulator } from './device.js'
export { type Httpv2SimulatorOptions, type Httpv2Events, type DoorState } from './state.js'
export {
  buildMultipart,
  makeJpeg,
  isJpeg,
  md5Hex,
  HTTPV2_PATHS,
  PEOPLE_ERROR,
  TICKET_RESULT,
  MAX_PERSON_PHOTO_BYTES,
  MAX_RECORD_PHOTO_BYTES,
  MAX_PEOPLE,
  DOWNLOAD_LIMIT,
  DELETE_LIMIT,
  SYSTEM_RECORD_BATCH,
  type MultipartPart,
} from './protocol.js'
