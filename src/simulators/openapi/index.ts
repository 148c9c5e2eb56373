export { startOpenapiSimulator, type OpenapiSimulator, type OpenapiSimulatorOptions } from './server.js'
export {
  OpenapiDevice,
  OPENAPI_MESSAGES,
  MAX_CLOCK_DIFF_MS,
  openapiSign,
  checkAuth,
  makeTinyJpeg,
  testJpegBase64,
  generatedUser,
  type OpenapiDeviceOptions,
  type RecordFilter,
  type SimHttpRequest,
  type SimHttpResponse,
  type AuthResult,
} from './device.js'
