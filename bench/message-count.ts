/**
 * Counting a frame's messages without decoding it, as the bench's clients do: an msgpack frame
 * from its array header alone, a JSON frame from its message openings.
 */

/** Messages in an msgpack frame, from its array header alone. */
export function countMsgpack(data: Buffer): number {
  const b = data[0] as number;
  if (b >= 0x90 && b <= 0x9f) return b & 0x0f;
  if (b === 0xdc) return data.readUInt16BE(1);
  if (b === 0xdd) return data.readUInt32BE(1);
  return 0;
}

const MESSAGE_OPENING = Buffer.from('{"T":');

/**
 * Messages in a JSON frame: the gateway writes each one with `T` first and no spaces, and a
 * string holding `{"T":` would carry its quotes escaped, so every opening is a message.
 */
export function countJson(data: Buffer): number {
  let n = 0;
  for (let at = data.indexOf(MESSAGE_OPENING); at >= 0; at = data.indexOf(MESSAGE_OPENING, at + MESSAGE_OPENING.length)) n += 1;
  return n;
}
