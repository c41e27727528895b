/** The vendor's wire protocol: names, lossless codecs, frames. */
export * from './channels.js';
export * from './frame.js';
export * from './timestamp.js';
export type { WireValue } from './transcode.js';
export { jsonToMsgpack, msgpackToJson } from './transcode.js';
