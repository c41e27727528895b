/**
 * The tape folder a command reads (`tickmux tape ls|export --tape DIR`): it must exist, and a
 * stream asked for must be recorded in it. A missing folder is an error, not an empty tape, so a
 * mistyped path does not read as "nothing was recorded".
 */
import { stat } from 'node:fs/promises';
import { TickmuxError } from '../errors.js';
import { recordedStreams } from './tape-catalog.js';

/** The folder is missing, is no folder, or does not hold the stream asked for. */
export class TapeFolderError extends TickmuxError {
  constructor(code: 'ERR_TAPE_NOT_FOUND' | 'ERR_TAPE_NOT_A_FOLDER' | 'ERR_STREAM_NOT_RECORDED', message: string) {
    super(code, message);
  }
}

/**
 * Checks that `dir` is a folder.
 * @throws TapeFolderError when it is missing or a file
 */
export async function requireTapeFolder(dir: string): Promise<void> {
  let isFolder: boolean;
  try {
    isFolder = (await stat(dir)).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw new TapeFolderError('ERR_TAPE_NOT_FOUND', `no tape folder at ${dir}`);
    throw err;
  }
  if (!isFolder) throw new TapeFolderError('ERR_TAPE_NOT_A_FOLDER', `${dir} is not a folder`);
}

/**
 * Checks that `dir` holds a tape of `stream`.
 * @throws TapeFolderError when the folder is missing or the stream was not recorded there (the message lists what was)
 */
export async function requireRecordedStream(dir: string, stream: string): Promise<void> {
  await requireTapeFolder(dir);
  const recorded = await recordedStreams(dir);
  if (recorded.includes(stream)) return;
  const holds = recorded.length === 0 ? 'it holds no stream' : `it holds ${recorded.join(', ')}`;
  throw new TapeFolderError('ERR_STREAM_NOT_RECORDED', `${dir} has no tape of ${stream}; ${holds}`);
}
