/**
 * How a cluster's tape sits in JetStream (DESIGN.md §12), in pure functions: the stream's name
 * and subjects, the per-stream marks subject, a stored message as a `TapeRecord`, and the gap a
 * node records when it takes a stream over from an owner that recorded no end.
 *
 * - One JetStream stream per cluster, `<cluster>_tape`, captures `<cluster>.data.>`: the owner's
 *   relay publishes as they are (no extra work per message), and the marks.
 * - Marks of a stream go to `<cluster>.data.<stream>.-.mark`: under the stream's data prefix, so
 *   ONE filter subject `<cluster>.data.<stream>.>` reads its data and marks in stream order
 *   (nats-server 2.9 has one filter subject per consumer), on a channel token (`-`) no channel
 *   has, so no follower's data subscription (a channel and a symbol, or the channel's `*`) matches.
 * - A record's time is the server's receive time of the message (the stored timestamp, ns).
 */
import type { Encoding } from '../protocol/frame.js';
import type { Mark, TapeRecord } from '../tape/record.js';
import { EnvelopeError, unwrap } from './envelope.js';
import { streamKindOf } from '../protocol/streams.js';
import { escapeToken, TokenError, unescapeToken } from './subjects.js';

/** The JetStream stream holding the cluster's tape. */
export function tapeStreamName(clusterName: string): string {
  return `${clusterName}_tape`;
}

/** What the tape stream captures: every stream's relay data and marks. */
export function tapeSubjects(clusterName: string): string[] {
  return [`${clusterName}.data.>`];
}

/** The one filter subject that reads a stream's data and marks in order. */
export function streamFilter(clusterName: string, streamPath: string): string {
  return `${clusterName}.data.${escapeToken(streamPath)}.>`;
}

/** The stream path a tape subject belongs to (`<cluster>.data.<stream>.…`), or undefined for one that is no stream's. */
export function streamOfSubject(clusterName: string, subject: string): string | undefined {
  const prefix = `${clusterName}.data.`;
  if (!subject.startsWith(prefix)) return undefined;
  const token = subject.slice(prefix.length).split('.')[0] ?? '';
  try {
    const path = unescapeToken(token);
    return streamKindOf(path) === undefined ? undefined : path;
  } catch (err) {
    if (err instanceof TokenError) return undefined;
    throw err;
  }
}

/** Where the owner publishes a stream's link marks (and a new owner its failover gap). */
export function markSubject(clusterName: string, streamPath: string): string {
  return `${clusterName}.data.${escapeToken(streamPath)}.-.mark`;
}

/** The vendor's bytes of one message as a one-message frame (what a tape frame holds). */
export function oneMessageFrame(encoding: Encoding, body: Buffer): Buffer {
  // msgpack: a fixarray of one (0x91) before the message; JSON: the message in brackets.
  return encoding === 'msgpack' ? Buffer.concat([Buffer.of(0x91), body]) : Buffer.concat([Buffer.from('['), body, Buffer.from(']')]);
}

/**
 * A stored message as a tape record (`offset` is its stream sequence), or undefined for one that
 * is not tickmux's (another envelope version, a malformed mark): a tape reader skips it.
 */
export function recordOf(subject: string, data: Uint8Array, ns: bigint, seq: number): TapeRecord | undefined {
  if (subject.endsWith('.-.mark')) {
    try {
      const mark = JSON.parse(Buffer.from(data).toString('utf8')) as Mark;
      return typeof mark?.event === 'string' ? { type: 'mark', ns, mark, offset: seq } : undefined;
    } catch (err) {
      if (err instanceof SyntaxError) return undefined;
      throw err;
    }
  }
  try {
    const envelope = unwrap(data);
    return { type: 'frame', ns, encoding: envelope.encoding, bytes: oneMessageFrame(envelope.encoding, envelope.body), offset: seq };
  } catch (err) {
    if (err instanceof EnvelopeError) return undefined;
    throw err;
  }
}

export const FAILOVER_GAP_REASON = 'no owner recorded (failover)';

/**
 * The gap mark a node records when it takes a stream's lease: from the stream's last record to
 * now, unless the tape is empty or its last record is the previous owner's `upstream_down` (it
 * stopped its link cleanly: the link's down time is on the tape already).
 */
export function failoverGap(last: TapeRecord | undefined, nowNs: bigint): Extract<Mark, { event: 'tape_gap' }> | undefined {
  if (last === undefined) return undefined;
  if (last.type === 'mark' && last.mark.event === 'upstream_down') return undefined;
  if (nowNs <= last.ns) return undefined;
  return { event: 'tape_gap', from: last.ns.toString(), to: nowNs.toString(), reason: FAILOVER_GAP_REASON, messages: 0 };
}
