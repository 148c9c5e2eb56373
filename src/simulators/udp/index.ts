export { createUdpSimulator, type UdpSimulator } from './device.js'
export { type UdpSimulatorOptions, type UdpEvents, type AccessEventOptions } from './state.js'
export { parseLenientJson, encodeMessage, makeJpeg, UDP_PATHS, FACE_STATE, ACK_TYPE, UNLOCK_TYPE, type ParsedMessage } from './protocol.js'
